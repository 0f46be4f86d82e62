package statusyaml

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// maxDifferences caps the report: one hostile scalar usually shows up in many objects.
const maxDifferences = 20

// CompareIntended converts the status file to JSON the way rsync does and compares it, as generic JSON
// values, with the JSON the renderer meant. It returns nil when they are equal, else an error listing the
// paths that differ (e.g. `$.metadata.labels["on"]: rsync reads true (boolean), we meant "on" (string)`).
func CompareIntended(yamlBytes, intendedJSON []byte) error {
	jsonBytes, err := yaml.YAMLToJSON(yamlBytes)
	if err != nil {
		return fmt.Errorf("YAML to JSON (what rsync runs first): %w", err)
	}
	got, err := decodeGeneric(jsonBytes)
	if err != nil {
		return fmt.Errorf("reading sigs.k8s.io/yaml's JSON: %w", err)
	}
	want, err := decodeGeneric(intendedJSON)
	if err != nil {
		return fmt.Errorf("reading the intended JSON: %w", err)
	}
	var diffs []string
	diff("$", got, want, &diffs)
	if len(diffs) == 0 {
		return nil
	}
	more := ""
	if len(diffs) > maxDifferences {
		more = fmt.Sprintf("\n  ... and %d more", len(diffs)-maxDifferences)
		diffs = diffs[:maxDifferences]
	}
	return fmt.Errorf("YAML 1.1 (rsync) reads %d value(s) differently from what we meant:\n  %s%s",
		len(diffs), strings.Join(diffs, "\n  "), more)
}

// decodeGeneric parses JSON keeping numbers as written, so 1e3 and 1000 compare by value, not by float64.
func decodeGeneric(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("more than one JSON value")
	}
	return v, nil
}

// diff appends a line for every place where got (rsync's reading) and want (ours) differ.
func diff(path string, got, want any, out *[]string) {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			*out = append(*out, mismatch(path, got, want))
			return
		}
		for _, k := range sortedKeys(w) {
			if gv, ok := g[k]; ok {
				diff(childPath(path, k), gv, w[k], out)
			} else {
				*out = append(*out, fmt.Sprintf("%s: missing in rsync's reading, we meant %s", childPath(path, k), describe(w[k])))
			}
		}
		for _, k := range sortedKeys(g) {
			if _, ok := w[k]; !ok {
				*out = append(*out, fmt.Sprintf("%s: rsync reads %s, which we never wrote", childPath(path, k), describe(g[k])))
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			*out = append(*out, mismatch(path, got, want))
			return
		}
		for i := range w {
			diff(fmt.Sprintf("%s[%d]", path, i), g[i], w[i], out)
		}
	case json.Number:
		g, ok := got.(json.Number)
		if !ok || !sameNumber(g, w) {
			*out = append(*out, mismatch(path, got, want))
		}
	default: // string, bool, nil
		if got != want {
			*out = append(*out, mismatch(path, got, want))
		}
	}
}

func mismatch(path string, got, want any) string {
	return fmt.Sprintf("%s: rsync reads %s, we meant %s", path, describe(got), describe(want))
}

// describe shows a JSON value with its type, short.
func describe(v any) string {
	var kind string
	switch v.(type) {
	case nil:
		return "null"
	case string:
		kind = "string"
	case bool:
		kind = "boolean"
	case json.Number:
		kind = "number"
	case map[string]any:
		kind = "object"
	case []any:
		kind = "array"
	}
	text, _ := json.Marshal(v)
	if len(text) > 80 {
		text = append(text[:77], "..."...)
	}
	return fmt.Sprintf("%s (%s)", text, kind)
}

func sameNumber(a, b json.Number) bool {
	x, okX := new(big.Rat).SetString(string(a))
	y, okY := new(big.Rat).SetString(string(b))
	if !okX || !okY {
		return a == b
	}
	return x.Cmp(y) == 0
}

var plainKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// childPath writes `.key` for plain keys and `["key"]` for anything else (labels like emco/deployment-id).
func childPath(path, key string) string {
	if plainKey.MatchString(key) {
		return path + "." + key
	}
	return path + "[" + strconv.Quote(key) + "]"
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
