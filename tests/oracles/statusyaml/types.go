package statusyaml

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
)

// The Go types below are our own mirror of EMCO's k8splugin.io/v1alpha1 ResourceBundleState, the type rsync
// decodes every status file into (emco-base f12558f,
// src/monitor/pkg/apis/k8splugin/v1alpha1/resourcebundlestate_types.go). Field names and JSON tags follow
// EMCO's exactly; element types of the typed arrays are the Kubernetes API types EMCO uses, from a current
// k8s.io/api.
//
// One deliberate difference: each typed array is an Embedded[T] instead of a plain []T, so that the objects
// inside decode loosely while everything else decodes strictly (see Embedded).

// ResourceBundleState is the whole status document.
type ResourceBundleState struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ResourceBundleStateSpec   `json:"spec,omitempty"`
	Status ResourceBundleStateStatus `json:"status,omitempty"`
}

// ResourceBundleStateSpec holds the tracker's selector.
type ResourceBundleStateSpec struct {
	Selector *metav1.LabelSelector `json:"selector"`
}

// ResourceBundleStateStatus holds readiness, the typed arrays rsync reads, and resourceStatuses for the rest.
type ResourceBundleStateStatus struct {
	Ready         bool  `json:"ready"`
	ResourceCount int32 `json:"resourceCount"`

	PodStatuses         Embedded[corev1.Pod]                               `json:"podStatuses,omitempty"`
	ServiceStatuses     Embedded[corev1.Service]                           `json:"serviceStatuses,omitempty"`
	ConfigMapStatuses   Embedded[corev1.ConfigMap]                         `json:"configMapStatuses,omitempty"`
	DeploymentStatuses  Embedded[appsv1.Deployment]                        `json:"deploymentStatuses,omitempty"`
	DaemonSetStatuses   Embedded[appsv1.DaemonSet]                         `json:"daemonSetStatuses,omitempty"`
	CsrStatuses         Embedded[certificatesv1.CertificateSigningRequest] `json:"csrStatuses,omitempty"`
	JobStatuses         Embedded[batchv1.Job]                              `json:"jobStatuses,omitempty"`
	StatefulSetStatuses Embedded[appsv1.StatefulSet]                       `json:"statefulSetStatuses,omitempty"`

	ResourceStatuses []ResourceStatus `json:"resourceStatuses,omitempty"`
}

// ResourceStatus is one object of a kind without a typed array; Res is the object's JSON, which JSON carries
// as padded standard base64 (Go's encoding of []byte), so a malformed `res` is a decode error here as in rsync.
type ResourceStatus struct {
	Group     string `json:"group"`
	Version   string `json:"version"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	Res       []byte `json:"res"`
}

// Embedded is a typed array of Kubernetes objects, decoded loosely.
//
// Why: the status file is decoded strictly (unknown or duplicate fields are errors) so that a misspelt or
// misplaced field of the ResourceBundleState itself is caught, even though rsync would silently ignore it.
// The objects in the typed arrays, though, are whatever the cluster's API server returned: newer than any
// k8s.io/api EMCO or this oracle builds with, so unknown fields there are expected and rsync ignores them. The
// strict decoder hands this type the raw JSON of the array, and UnmarshalJSON decodes it with the
// non-strict, case-sensitive decoder Kubernetes uses. A value of the wrong type (a label value that YAML 1.1
// read as a boolean or a number) is still an error, as it is for rsync.
//
// Filtering the strict decoder's unknown-field errors by path would also work, but it stops collecting after
// 100 errors: a pod list full of new fields could hide an unknown field of our own.
type Embedded[T any] []T

// UnmarshalJSON decodes each element loosely into T and checks that it says it is a T.
func (e *Embedded[T]) UnmarshalJSON(data []byte) error {
	kind, array := kindOf[T](), arrayPath[T]()
	var raw []json.RawMessage
	if err := kjson.UnmarshalCaseSensitivePreserveInts(data, &raw); err != nil {
		return fmt.Errorf("%s: %w", array, err)
	}
	out := make([]T, 0, len(raw))
	for i, item := range raw {
		var typeMeta metav1.TypeMeta
		if err := kjson.UnmarshalCaseSensitivePreserveInts(item, &typeMeta); err != nil {
			return fmt.Errorf("%s[%d]: %w", array, i, err)
		}
		if typeMeta.Kind != kind {
			return fmt.Errorf("%s[%d]: kind is %q, want %q (full objects carry apiVersion and kind)",
				array, i, typeMeta.Kind, kind)
		}
		var obj T
		if err := kjson.UnmarshalCaseSensitivePreserveInts(item, &obj); err != nil {
			return fmt.Errorf("%s[%d] (%s): %w", array, i, kind, err)
		}
		out = append(out, obj)
	}
	*e = out
	return nil
}

// arrayPath is the JSON path of the typed array holding T, for error messages.
func arrayPath[T any]() string {
	status := reflect.TypeFor[ResourceBundleStateStatus]()
	for i := range status.NumField() {
		if f := status.Field(i); f.Type == reflect.TypeFor[Embedded[T]]() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			return "status." + name
		}
	}
	return "typed array of " + kindOf[T]()
}

// kindOf is the Kubernetes kind of T: the Go type names of k8s.io/api are the kinds.
func kindOf[T any]() string {
	return reflect.TypeFor[T]().Name()
}
