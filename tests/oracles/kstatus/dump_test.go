package kstatus

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadDumpRefusesAMissingOrEmptyDump(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadDump(filepath.Join(dir, "absent")); err == nil {
		t.Error("a missing dump passed")
	}
	if _, err := LoadDump(dir); err == nil || !strings.Contains(err.Error(), "holds no cases") {
		t.Errorf("an empty dump: %v", err)
	}
	// Half-written files (dot files) do not count.
	if err := os.WriteFile(filepath.Join(dir, ".x.json.tmp"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadDump(dir); err == nil {
		t.Error("a dump of temporary files passed")
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.json"), []byte(`{"case": "x"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadDump(dir); err == nil {
		t.Error("a case without object and verdict passed")
	}
}

func TestComputeTranslatesTerminatingAndErrors(t *testing.T) {
	terminating := `{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": {"name": "c", "namespace": "n", "deletionTimestamp": "2024-01-01T00:00:00Z"}}`
	j, _, err := Compute([]byte(terminating))
	if err != nil || j.Raw != "Terminating" || j.Ours != "InProgress" {
		t.Errorf("terminating: %+v %v", j, err)
	}
	// kstatus has no rule for the deprecated phase Unknown and returns an error.
	unknown := `{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n"},
		"status": {"phase": "Unknown"}}`
	j, _, err = Compute([]byte(unknown))
	if err != nil || j.Ours != "Unknown" {
		t.Errorf("pod phase Unknown: %+v %v", j, err)
	}
	// Integers must arrive as integers: a Deployment with every count right is Current.
	deployment := `{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "n", "generation": 1},
		"spec": {"replicas": 2},
		"status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2,
			"conditions": [{"type": "Available", "status": "True"}]}}`
	j, _, err = Compute([]byte(deployment))
	if err != nil || j.Ours != "Current" {
		t.Errorf("deployment: %+v %v", j, err)
	}
}

func TestCheckIdentityCatchesAMixUp(t *testing.T) {
	obj := []byte(`{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "n"}}`)
	_, u, err := Compute(obj)
	if err != nil {
		t.Fatal(err)
	}
	c := Case{Verdict: Verdict{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "n", Name: "d"}}
	if err := CheckIdentity(c, u); err != nil {
		t.Error(err)
	}
	c.Verdict.Name = "other"
	if err := CheckIdentity(c, u); err == nil {
		t.Error("a verdict for another object passed")
	}
}
