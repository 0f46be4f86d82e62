// Package kstatus is the reference oracle for the agent's health (DESIGN §5, §9): kstatus
// (sigs.k8s.io/cli-utils/pkg/kstatus/status, the library kubectl's apply --prune and cli-utils' applier wait
// with) judges the same live objects our `outpost-agent status -o json` judged, and every disagreement fails
// unless it is one we chose and listed (expectedDifferences in kstatus_test.go, README's Health section).
//
// The Rust e2e test tests/e2e/health_oracle.rs syncs fixtures through the real agent, sets their status
// through the status subresource, runs `outpost-agent status -o json`, and records per case one JSON file
// (tests/src/oracle.rs, record_health): the live object as the API server returned it and our verdict for it.
// Compute (below) runs kstatus on the object exactly as recorded, but for the two differences of vocabulary
// documented there.
package kstatus

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Verdict is one object of `outpost-agent status -o json` (agent/src/cmd/status.rs, ObjectStatus).
type Verdict struct {
	Group     string `json:"group"`
	Version   string `json:"version"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Health    struct {
		// Status is Current, InProgress, Failed or Unknown.
		Status  string `json:"status"`
		Message string `json:"message"`
	} `json:"health"`
}

// Case is one recorded file: `<case>_<server version>.json` (tests/src/oracle.rs makes the name file-safe).
type Case struct {
	// File is the path it was read from.
	File string
	// Name is the fixture's case name (the key of expectedDifferences).
	Name string `json:"case"`
	// Server is the API server's gitVersion (the same case is recorded once per Kubernetes version).
	Server string `json:"server"`
	// Object is the live object, as the API server returned it.
	Object json.RawMessage `json:"object"`
	// Verdict is what `outpost-agent status -o json` said about it.
	Verdict Verdict `json:"verdict"`
}

// LoadDump reads every case in dir. A missing or empty dump, or an unreadable file, is an error: an oracle
// that checks nothing must not pass.
func LoadDump(dir string) ([]Case, error) {
	items, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("kstatus dump %s: %w (run the Rust e2e test health_oracle first; `make test` does both)", dir, err)
	}
	var cases []Case
	for _, item := range items {
		name := item.Name()
		if item.IsDir() || strings.HasPrefix(name, ".") || filepath.Ext(name) != ".json" {
			continue
		}
		path := filepath.Join(dir, name)
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		c := Case{File: path}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if c.Name == "" || len(c.Object) == 0 || c.Verdict.Health.Status == "" {
			return nil, fmt.Errorf("%s: a case needs `case`, `object` and `verdict.health.status`", path)
		}
		cases = append(cases, c)
	}
	sort.Slice(cases, func(i, j int) bool { return cases[i].File < cases[j].File })
	if len(cases) == 0 {
		return nil, fmt.Errorf("kstatus dump %s holds no cases: the e2e test recorded nothing, so nothing would be checked", dir)
	}
	return cases, nil
}
