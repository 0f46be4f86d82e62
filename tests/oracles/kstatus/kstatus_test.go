package kstatus

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// difference is a case where our health deliberately differs from kstatus: both verdicts exactly, and why.
// README's Health section states the same rules for users.
type difference struct {
	ours    string
	kstatus string
	why     string
}

// expectedDifferences, by case name (tests/e2e/health_oracle.rs). Every entry must occur in the dump with
// exactly these verdicts, and no other case may differ: a difference that disappears, or a new one, fails.
var expectedDifferences = map[string]difference{
	"statefulset-on-delete-not-ready": {"InProgress", "Current",
		"OnDelete only means Pods are not replaced on update; they must still exist and be ready. kstatus calls every OnDelete StatefulSet Current"},
	"statefulset-scaled-to-zero-unobserved": {"InProgress", "Current",
		"workload controllers always write status.observedGeneration; until they have, their counts describe nothing (kstatus requires it of DaemonSets only)"},
	"replicaset-scaled-to-zero-unobserved": {"InProgress", "Current",
		"workload controllers always write status.observedGeneration; until they have, their counts describe nothing (kstatus requires it of DaemonSets only)"},
	"job-running": {"InProgress", "Current",
		"a Job is done when it has completed: a bundle that depends on a migration Job must wait for it to finish. kstatus calls a started Job Current"},
	"pod-failed": {"Failed", "Current",
		"a Pod in Git is the workload itself; that it failed is the news. kstatus calls it Current (\"completed, but not successfully\")"},
	"pod-image-pull-backoff": {"Failed", "InProgress",
		"ImagePullBackOff, ErrImagePull, InvalidImageName, CreateContainerConfigError and CrashLoopBackOff (in any container, init containers too, in any phase) need a fixed spec or registry. kstatus fails only CrashLoopBackOff of a running Pod"},
	"pvc-lost": {"Failed", "InProgress",
		"a Lost claim's volume is gone and nothing brings it back. kstatus: any phase but Bound is InProgress"},
	"service-load-balancer-pending": {"InProgress", "Current",
		"a LoadBalancer Service is there to be reached from outside: it is ready when status.loadBalancer.ingress is set. kstatus is content with a cluster IP"},
	"widget-ready-for-older-generation": {"InProgress", "Current",
		"a Ready=True condition whose observedGeneration is older than metadata.generation says nothing about the current spec. kstatus does not read a condition's observedGeneration"},
	"widget-ready-invalid-status": {"Unknown", "Current",
		"a Ready condition whose status is none of True/False/Unknown cannot be judged, so it is not ready. kstatus skips the condition and calls the object Current"},
	"widget-reconciling-listed-before-stalled": {"Failed", "InProgress",
		"Stalled=True outranks Reconciling=True whatever their order: conditions are a map keyed by type and their order means nothing. kstatus takes whichever comes first"},
}

// dumpDir is OUTPOST_KSTATUS_DUMP, else `<cargo target dir>/kstatus-dump` as tests/src/oracle.rs writes it.
func dumpDir() string {
	if dir := os.Getenv("OUTPOST_KSTATUS_DUMP"); dir != "" {
		return dir
	}
	if target := os.Getenv("CARGO_TARGET_DIR"); target != "" {
		return filepath.Join(target, "kstatus-dump")
	}
	// go test runs in this package's directory, tests/oracles/kstatus.
	return filepath.Join("..", "..", "..", "target", "kstatus-dump")
}

// TestHealthAgreesWithKstatus is the oracle proper: on every recorded live object our verdict is kstatus's,
// or exactly the listed difference.
func TestHealthAgreesWithKstatus(t *testing.T) {
	dir, err := filepath.Abs(dumpDir())
	if err != nil {
		t.Fatal(err)
	}
	cases, err := LoadDump(dir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	servers := map[string]int{}
	for _, c := range cases {
		servers[c.Server]++
		t.Run(c.Name+"@"+c.Server, func(t *testing.T) {
			judged, u, err := Compute(c.Object)
			if err != nil {
				t.Fatalf("%s: %v", c.File, err)
			}
			if err := CheckIdentity(c, u); err != nil {
				t.Fatalf("%s: %v", c.File, err)
			}
			ours := c.Verdict.Health
			want, listed := expectedDifferences[c.Name]
			switch {
			case listed:
				seen[c.Name] = true
				if ours.Status != want.ours || string(judged.Raw) != want.kstatus {
					t.Errorf("%s: expected difference (ours %s, kstatus %s: %s) did not occur: ours %s (%q), kstatus %s (%q); update expectedDifferences and README",
						c.File, want.ours, want.kstatus, want.why, ours.Status, ours.Message, judged.Raw, judged.Message)
				}
			case ours.Status != judged.Ours:
				t.Errorf("%s: we say %s (%q), kstatus says %s (%q)",
					c.File, ours.Status, ours.Message, judged.Raw, judged.Message)
			}
		})
	}
	var unused []string
	for name := range expectedDifferences {
		if !seen[name] {
			unused = append(unused, name)
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		t.Errorf("expected differences never recorded (remove them, or record their case again): %v", unused)
	}
	t.Logf("judged %d cases from %s (per API server: %v); %d expected differences", len(cases), dir, servers, len(expectedDifferences))
}
