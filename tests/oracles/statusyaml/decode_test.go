package statusyaml

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// fixture is a small status document in the renderer's layout. The placeholders are replaced by the test
// cases with a key or value written one way or another (quoted, unquoted).
const fixture = `apiVersion: k8splugin.io/v1alpha1
kind: ResourceBundleState
metadata:
  name: web-status
  namespace: web
  labels:
    emco/deployment-id: 100-web
    {label_key}: {label_value}
  annotations:
    outpost.dev/sync: '{"state":"Synced"}'
    {annotation_key}: {annotation_value}
spec:
  selector:
    matchLabels:
      emco/deployment-id: 100-web
status:
  ready: false
  resourceCount: 2
  deploymentStatuses:
  - apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: web
      namespace: web
      labels:
        app: {deployment_label_value}
      managedFields: []
    spec:
      replicas: 1
      selector:
        matchLabels:
          app: web
      template:
        metadata:
          labels:
            app: web
        spec:
          containers:
          - name: main
            image: nginx:1.27
      aFieldFromAFutureKubernetes: true
    status:
      replicas: 1
  resourceStatuses:
  - group: ""
    version: v1
    kind: ResourceQuota
    name: {resource_name}
    namespace: web
    res: {res}
`

// doc fills the fixture: keys and values are inserted as given (so the case decides about quoting).
func doc(t *testing.T, replacements ...string) []byte {
	t.Helper()
	values := map[string]string{
		"{label_key}":              "plain",
		"{label_value}":            "value",
		"{annotation_key}":         "note",
		"{annotation_value}":       "text",
		"{deployment_label_value}": "web",
		"{resource_name}":          "quota",
		"{res}":                    base64.StdEncoding.EncodeToString([]byte(`{"kind":"ResourceQuota"}`)),
	}
	text := fixture
	// A `{placeholder}` takes the given value; any other text is replaced once, where it first occurs.
	for i := 0; i+1 < len(replacements); i += 2 {
		if _, ok := values[replacements[i]]; ok {
			values[replacements[i]] = replacements[i+1]
		} else {
			text = strings.Replace(text, replacements[i], replacements[i+1], 1)
		}
	}
	for k, v := range values {
		text = strings.ReplaceAll(text, k, v)
	}
	return []byte(text)
}

// intended is what the renderer meant: the same document with every replaced scalar double-quoted, read by
// sigs.k8s.io/yaml (quoted scalars are strings in YAML 1.1 and 1.2 alike).
func intended(t *testing.T, replacements ...string) []byte {
	t.Helper()
	quoted := make([]string, len(replacements))
	for i := 0; i < len(replacements); i += 2 {
		quoted[i] = replacements[i]
		v := replacements[i+1]
		if !strings.HasPrefix(v, `"`) && !strings.HasPrefix(v, `'`) {
			v = `"` + v + `"`
		}
		quoted[i+1] = v
	}
	j, err := yaml.YAMLToJSON(doc(t, quoted...))
	if err != nil {
		t.Fatalf("intended fixture: %v", err)
	}
	return j
}

func TestTheFixtureDecodesAndMatchesItsIntent(t *testing.T) {
	d, err := Decode(doc(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Status.DeploymentStatuses[0].Spec.Replicas; got == nil || *got != 1 {
		t.Fatalf("replicas = %v", got)
	}
	if got := d.Labels["emco/deployment-id"]; got != "100-web" {
		t.Fatalf("label = %q", got)
	}
	if err := CompareIntended(doc(t), intended(t)); err != nil {
		t.Fatal(err)
	}
}

// Every scalar YAML 1.1 reads as something other than a string, as go-yaml v2 (inside sigs.k8s.io/yaml) does.
var hostile = []string{"on", "off", "On", "OFF", "yes", "no", "Yes", "NO", "y", "n", "Y", "N", "True", "FALSE",
	"true", "0777", "012", "0o17", "1e3", "1E3", "1e-3", "0x1F", "0b101", "1_000", "10", "+1", "-1", "1.5", ".5",
	"null", "Null", "~"}

func TestQuotedHostileScalarsAreAccepted(t *testing.T) {
	for _, tok := range hostile {
		for _, quote := range []string{`"%s"`, `'%s'`} {
			q := strings.ReplaceAll(quote, "%s", tok)
			repl := []string{"{label_key}", q, "{label_value}", q, "{annotation_key}", q, "{annotation_value}", q,
				"{deployment_label_value}", q, "{resource_name}", q}
			if _, err := Decode(doc(t, repl...)); err != nil {
				t.Errorf("%s: %v", q, err)
			}
			if err := CompareIntended(doc(t, repl...), intended(t, repl...)); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	}
}

// isNull tells the YAML 1.1 nulls: decoding null into a string gives "" without an error, so only the
// intended-JSON comparison catches them.
func isNull(tok string) bool {
	return tok == "null" || tok == "Null" || tok == "~"
}

func TestAnUnquotedHostileValueInTheDocumentsOwnLabelsFailsToDecode(t *testing.T) {
	for _, tok := range hostile {
		if isNull(tok) {
			continue
		}
		_, err := Decode(doc(t, "{label_value}", tok))
		if err == nil || !strings.Contains(err.Error(), "labels") {
			t.Errorf("label value %s: %v", tok, err)
		}
	}
}

func TestAnUnquotedHostileValueInsideAnEmbeddedObjectFailsToDecode(t *testing.T) {
	for _, tok := range hostile {
		if isNull(tok) {
			continue
		}
		_, err := Decode(doc(t, "{deployment_label_value}", tok))
		if err == nil || !strings.Contains(err.Error(), "status.deploymentStatuses[0] (Deployment)") {
			t.Errorf("deployment label value %s: %v", tok, err)
		}
	}
}

func TestOnYesAndOctalValuesAreReportedWithTheirPath(t *testing.T) {
	cases := map[string]string{
		"on":   `$.metadata.annotations.note: rsync reads true (boolean), we meant "on" (string)`,
		"yes":  `$.metadata.annotations.note: rsync reads true (boolean), we meant "yes" (string)`,
		"NO":   `$.metadata.annotations.note: rsync reads false (boolean), we meant "NO" (string)`,
		"0777": `$.metadata.annotations.note: rsync reads 511 (number), we meant "0777" (string)`,
		"1e3":  `$.metadata.annotations.note: rsync reads 1000 (number), we meant "1e3" (string)`,
		"~":    `$.metadata.annotations.note: rsync reads null, we meant "~" (string)`,
	}
	for tok, want := range cases {
		err := CompareIntended(doc(t, "{annotation_value}", tok), intended(t, "{annotation_value}", tok))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: want %q in %v", tok, want, err)
		}
	}
}

func TestHostileKeysDecodeButAreReportedAsDifferentKeys(t *testing.T) {
	cases := map[string]string{
		"y":    `$.metadata.labels.true: rsync reads "value" (string), which we never wrote`,
		"on":   `$.metadata.labels.true`,
		"n":    `$.metadata.labels.false`,
		"0777": `$.metadata.labels["511"]`,
		"0x1F": `$.metadata.labels["31"]`,
	}
	for tok, want := range cases {
		if _, err := Decode(doc(t, "{label_key}", tok)); err != nil {
			t.Errorf("key %s: %v", tok, err) // a key stays a string key: rsync decodes it, wrongly
		}
		err := CompareIntended(doc(t, "{label_key}", tok), intended(t, "{label_key}", tok))
		if err == nil || !strings.Contains(err.Error(), want) ||
			!strings.Contains(err.Error(), childPath("$.metadata.labels", tok)+`: missing in rsync's reading`) {
			t.Errorf("key %s: want %q in %v", tok, want, err)
		}
	}
}

func TestANullKeyCannotBeDecoded(t *testing.T) {
	for _, tok := range []string{"null", "~"} {
		if _, err := Decode(doc(t, "{label_key}", tok)); err == nil || !strings.Contains(err.Error(), "unsupported map key") {
			t.Errorf("key %s: %v", tok, err)
		}
	}
}

func TestKeysThatCollideInYAML11AreDuplicates(t *testing.T) {
	// `on` and `yes` are both the key true for rsync: one value would silently replace the other.
	_, err := Decode(doc(t, "{label_key}", "on", "{annotation_key}", "x", "emco/deployment-id: 100-web\n", "emco/deployment-id: 100-web\n    yes: other\n"))
	if err == nil || !strings.Contains(err.Error(), "already set") {
		t.Fatalf("%v", err)
	}
}

func TestANullNameIsReportedAgainstTheIntent(t *testing.T) {
	// rsync decodes `name: null` into "" without complaint; only the comparison sees it.
	if _, err := Decode(doc(t, "{resource_name}", "null")); err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(doc(t, "{label_value}", "~")); err != nil {
		t.Fatal(err)
	}
	err := CompareIntended(doc(t, "{resource_name}", "null"), intended(t, "{resource_name}", "null"))
	want := `$.status.resourceStatuses[0].name: rsync reads null, we meant "null" (string)`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("want %q in %v", want, err)
	}
}

func TestUnknownFieldsOfTheDocumentItselfAreErrors(t *testing.T) {
	cases := map[string][2]string{
		"top level":        {"kind: ResourceBundleState\n", "kind: ResourceBundleState\nextra: 1\n"},
		"metadata":         {"  name: web-status\n", "  name: web-status\n  nmae: x\n"},
		"spec":             {"spec:\n", "spec:\n  selectors: {}\n"},
		"status":           {"  ready: false\n", "  ready: false\n  podStatus: []\n"},
		"resourceStatuses": {"    version: v1\n", "    version: v1\n    resource: x\n"},
		"case":             {"  ready: false\n", "  Ready: false\n"},
	}
	for name, c := range cases {
		_, err := Decode(doc(t, c[0], c[1]))
		if err == nil || !strings.Contains(err.Error(), "unknown field") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestUnknownFieldsOfEmbeddedObjectsAreAccepted(t *testing.T) {
	text := doc(t, "      replicas: 1\n      selector:", "      replicas: 1\n      newerField: {a: b}\n      selector:")
	if _, err := Decode(text); err != nil {
		t.Fatal(err)
	}
}

func TestMalformedResAWrongKindAndAWrongAPIVersionAreErrors(t *testing.T) {
	cases := map[string][]string{
		"unpadded base64": {"{res}", strings.TrimRight(base64.StdEncoding.EncodeToString([]byte(`{"kind":"XY"}`)), "=")},
		"url base64":      {"{res}", base64.URLEncoding.EncodeToString([]byte(`{"k":"??>>"}`))},
		"not JSON":        {"{res}", base64.StdEncoding.EncodeToString([]byte(`kind: X`))},
		"wrong kind":      {"    kind: Deployment\n", "    kind: StatefulSet\n"},
		"wrong group":     {"apiVersion: k8splugin.io/v1alpha1", "apiVersion: example.com/v1alpha1"},
		"resourceCount":   {"resourceCount: 2", "resourceCount: 2.5"},
	}
	for name, repl := range cases {
		if _, err := Decode(doc(t, repl...)); err == nil {
			t.Errorf("%s decoded", name)
		}
	}
}

func TestTheCorpusMustExistAndHoldStatusFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadCorpus(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing corpus passed")
	}
	if _, err := LoadCorpus(dir); err == nil || !strings.Contains(err.Error(), "no status files") {
		t.Errorf("an empty corpus: %v", err)
	}
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("orphan.json", []byte(`{}`))
	if _, err := LoadCorpus(dir); err == nil || !strings.Contains(err.Error(), "orphan.json") {
		t.Errorf("an orphan intent: %v", err)
	}
	os.Remove(filepath.Join(dir, "orphan.json"))
	write("good.yaml", doc(t))
	write("good.json", intended(t))
	write("bad.yaml", doc(t, "{label_value}", "on"))
	write("misread.yaml", doc(t, "{annotation_value}", "0777"))
	write("misread.json", intended(t, "{annotation_value}", "0777"))
	entries, err := LoadCorpus(dir)
	if err != nil || len(entries) != 3 {
		t.Fatalf("%v %v", entries, err)
	}
	results := map[string]error{}
	for _, e := range entries {
		results[e.Name] = Check(e)
	}
	if results["good"] != nil {
		t.Errorf("good: %v", results["good"])
	}
	if err := results["bad"]; err == nil || !strings.Contains(err.Error(), "bad.yaml: rsync cannot decode it") {
		t.Errorf("bad: %v", err)
	}
	if err := results["misread"]; err == nil || !strings.Contains(err.Error(), "511") || !strings.Contains(err.Error(), "misread.yaml") {
		t.Errorf("misread: %v", err)
	}
}
