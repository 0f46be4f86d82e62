package kstatus

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// Judgement is kstatus's verdict on one object.
type Judgement struct {
	// Raw is kstatus's own status (Terminating included), or Unknown when it returned an error.
	Raw status.Status
	// Ours is Raw in our vocabulary (see Compute).
	Ours string
	// Message is kstatus's message, or its error.
	Message string
}

// Compute runs status.Compute on a recorded live object. Two translations, neither of which changes a
// verdict's meaning:
//   - Our Status has no Terminating: an object being deleted is InProgress for us ("being deleted"), which is
//     what Terminating means to anyone waiting for readiness. Terminating therefore reads as InProgress.
//   - Where kstatus cannot compute a status it returns an error; its own poller (kstatus/polling) reports
//     such an object as Unknown, so an error reads as Unknown.
//
// kstatus's one rule that reads the clock is for Pods: a Pod whose PodScheduled condition is False with reason
// Unschedulable is InProgress for the first status.ScheduleWindow (15 s) after its creation and Failed
// afterwards. Our health reads no clock and says Failed at once, so Pods are judged as kstatus judges them
// after that window (their creationTimestamp is moved back); without that the verdict would depend on how
// soon after the e2e test the oracle runs.
func Compute(object []byte) (Judgement, *unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	// UnmarshalJSON decodes numbers as int64, as kstatus's field readers expect (encoding/json would give
	// float64, which they silently treat as missing).
	if err := u.UnmarshalJSON(object); err != nil {
		return Judgement{}, nil, fmt.Errorf("decode the live object: %w", err)
	}
	if u.GetKind() == "Pod" && u.GetAPIVersion() == "v1" {
		u.SetCreationTimestamp(metav1.NewTime(time.Now().Add(-2 * status.ScheduleWindow)))
	}
	res, err := status.Compute(u)
	if err != nil {
		return Judgement{Raw: status.UnknownStatus, Ours: "Unknown", Message: err.Error()}, u, nil
	}
	j := Judgement{Raw: res.Status, Ours: res.Status.String(), Message: res.Message}
	if res.Status == status.TerminatingStatus {
		j.Ours = "InProgress"
	}
	return j, u, nil
}

// CheckIdentity fails when the verdict is about another object than the recorded one (a mix-up in the test).
func CheckIdentity(c Case, u *unstructured.Unstructured) error {
	gvk := u.GroupVersionKind()
	v := c.Verdict
	if v.Group != gvk.Group || v.Version != gvk.Version || v.Kind != gvk.Kind || v.Namespace != u.GetNamespace() || v.Name != u.GetName() {
		return fmt.Errorf("verdict for %s/%s %s %s/%s, but the recorded object is %s %s/%s",
			v.Group, v.Version, v.Kind, v.Namespace, v.Name, gvk, u.GetNamespace(), u.GetName())
	}
	return nil
}
