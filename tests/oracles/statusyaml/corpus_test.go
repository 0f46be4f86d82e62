package statusyaml

import (
	"os"
	"path/filepath"
	"testing"
)

// corpusDir is OUTPOST_STATUS_CORPUS, else `<cargo target dir>/status-corpus` as tests/src/oracle.rs writes it.
func corpusDir() string {
	if dir := os.Getenv("OUTPOST_STATUS_CORPUS"); dir != "" {
		return dir
	}
	if target := os.Getenv("CARGO_TARGET_DIR"); target != "" {
		return filepath.Join(target, "status-corpus")
	}
	// go test runs in this package's directory, tests/oracles/statusyaml.
	return filepath.Join("..", "..", "..", "target", "status-corpus")
}

// TestStatusCorpus is the oracle proper: every status file the Rust e2e tests read from Git must decode as
// EMCO's rsync decodes it, and mean what we meant.
func TestStatusCorpus(t *testing.T) {
	dir, err := filepath.Abs(corpusDir())
	if err != nil {
		t.Fatal(err)
	}
	entries, err := LoadCorpus(dir)
	if err != nil {
		t.Fatal(err)
	}
	withJSON := 0
	for _, e := range entries {
		if e.JSON != "" {
			withJSON++
		}
		t.Run(e.Name, func(t *testing.T) {
			if err := Check(e); err != nil {
				t.Error(err)
			}
		})
	}
	t.Logf("checked %d status files from %s, %d against their intended JSON", len(entries), dir, withJSON)
}
