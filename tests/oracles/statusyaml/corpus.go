package statusyaml

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Entry is one status file of the corpus the Rust e2e tests record (tests/src/oracle.rs): `<name>.yaml`, the
// file exactly as committed, and optionally `<name>.json`, the JSON our renderer meant.
type Entry struct {
	// Name is the file name without extension.
	Name string
	// YAML is the path of the status file.
	YAML string
	// JSON is the path of the intended JSON, or "" when the entry has none.
	JSON string
}

// LoadCorpus lists the entries of dir. A missing or empty corpus, or a `.json` without its `.yaml`, is an
// error: an oracle that checks nothing must not pass.
func LoadCorpus(dir string) ([]Entry, error) {
	items, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("status corpus %s: %w (run the Rust e2e tests first: they record every status file they read; `make test` does both)", dir, err)
	}
	byName := map[string]*Entry{}
	var orphans []string
	for _, item := range items {
		name := item.Name()
		if item.IsDir() || strings.HasPrefix(name, ".") {
			continue
		}
		stem, ext := strings.TrimSuffix(name, filepath.Ext(name)), filepath.Ext(name)
		if ext != ".yaml" && ext != ".json" {
			continue
		}
		e := byName[stem]
		if e == nil {
			e = &Entry{Name: stem}
			byName[stem] = e
		}
		if ext == ".yaml" {
			e.YAML = filepath.Join(dir, name)
		} else {
			e.JSON = filepath.Join(dir, name)
		}
	}
	entries := make([]Entry, 0, len(byName))
	for _, e := range byName {
		if e.YAML == "" {
			orphans = append(orphans, e.Name+".json")
			continue
		}
		entries = append(entries, *e)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	sort.Strings(orphans)
	if len(orphans) > 0 {
		return nil, fmt.Errorf("status corpus %s: intended JSON without its status file: %s", dir, strings.Join(orphans, ", "))
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("status corpus %s holds no status files: the e2e tests recorded nothing, so nothing would be checked", dir)
	}
	return entries, nil
}

// Check runs both checks on one entry; the error names the file.
func Check(e Entry) error {
	text, err := os.ReadFile(e.YAML)
	if err != nil {
		return err
	}
	var errs []error
	if _, err := Decode(text); err != nil {
		errs = append(errs, fmt.Errorf("%s: rsync cannot decode it: %w", e.YAML, err))
	}
	if e.JSON != "" {
		intended, err := os.ReadFile(e.JSON)
		if err != nil {
			return err
		}
		if err := CompareIntended(text, intended); err != nil {
			errs = append(errs, fmt.Errorf("%s against %s: %w", e.YAML, filepath.Base(e.JSON), err))
		}
	}
	return errors.Join(errs...)
}
