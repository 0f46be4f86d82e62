// Package statusyaml is the reference oracle for the status writer's YAML: it reads our status files the way
// EMCO's rsync does (Go, sigs.k8s.io/yaml, YAML 1.1) and says where that reading differs from what we meant.
//
// rsync decodes a status file with client-go's universal deserializer, which turns YAML into JSON with
// sigs.k8s.io/yaml.YAMLToJSON (go-yaml v2 underneath: YAML 1.1, so unquoted on/off/yes/no/y/n are booleans,
// 0777 is octal 511, ~ and null are null, also as mapping keys) and decodes that JSON case-sensitively into
// v1alpha1.ResourceBundleState. A file it cannot decode stops that app's status until rsync restarts; a file
// it decodes differently from us reports something we never said. The oracle checks both:
//
//   - Decode: the same YAML→JSON step, then a strict, case-sensitive decode into our mirror of EMCO's types
//     (types.go), with the embedded Kubernetes objects decoded loosely.
//   - CompareIntended: the JSON that YAML→JSON step produced, compared as generic JSON values with the JSON our
//     renderer meant (the e2e tests record it from a YAML 1.2 reading of the same file).
//
// Versions: EMCO's rsync (emco-base f12558f) builds with sigs.k8s.io/yaml v1.3.0 over gopkg.in/yaml.v2 v2.4.0;
// this module uses sigs.k8s.io/yaml v1.6.0 over go.yaml.in/yaml/v2, the same go-yaml v2 code moved to a new
// module path, with the same YAML 1.1 resolution of plain scalars. rsync's JSON step (json-iterator,
// case-sensitive, in apimachinery 0.23) is played by sigs.k8s.io/json, apimachinery's current case-sensitive
// decoder.
package statusyaml

import (
	"encoding/json"
	"errors"
	"fmt"

	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// APIVersion and Kind rsync's deserializer needs to find the type.
const (
	APIVersion = "k8splugin.io/v1alpha1"
	Kind       = "ResourceBundleState"
)

// Decode reads a status file as rsync does and returns the document, or the error rsync would stop on (plus
// stricter checks of the ResourceBundleState's own fields).
func Decode(yamlBytes []byte) (*ResourceBundleState, error) {
	// rsync's path: YAML 1.1 → JSON, non-strict about duplicate keys.
	jsonBytes, err := yaml.YAMLToJSON(yamlBytes)
	if err != nil {
		return nil, fmt.Errorf("YAML to JSON (what rsync runs first): %w", err)
	}
	// Stricter than rsync: a duplicate key means one value silently replaced another (e.g. `on` and `true`
	// are the same key in YAML 1.1).
	if _, err := yaml.YAMLToJSONStrict(yamlBytes); err != nil {
		return nil, fmt.Errorf("strict YAML (duplicate keys): %w", err)
	}
	var doc ResourceBundleState
	strictErrs, err := kjson.UnmarshalStrict(jsonBytes, &doc)
	if err != nil {
		return nil, fmt.Errorf("decoding into ResourceBundleState: %w", err)
	}
	if len(strictErrs) > 0 {
		return nil, fmt.Errorf("decoding into ResourceBundleState: %w", errors.Join(strictErrs...))
	}
	if doc.APIVersion != APIVersion || doc.Kind != Kind {
		return nil, fmt.Errorf("apiVersion/kind is %q/%q, want %q/%q", doc.APIVersion, doc.Kind, APIVersion, Kind)
	}
	for i, rs := range doc.Status.ResourceStatuses {
		// EMCO's orchestrator unmarshals res as the object's JSON.
		var obj map[string]any
		if err := json.Unmarshal(rs.Res, &obj); err != nil {
			return nil, fmt.Errorf("status.resourceStatuses[%d] (%s %s): res is not an object's JSON: %w",
				i, rs.Kind, rs.Name, err)
		}
	}
	return &doc, nil
}
