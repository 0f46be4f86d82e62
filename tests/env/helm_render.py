#!/usr/bin/env python3
"""Lint and render the chart with Helm v4 (helm_python_sdk), for the chart tests.

    helm_render.py lint <chart> [<values.yaml>...]
    helm_render.py template <chart> <release> <namespace> [<values.yaml>...]

`template` prints every rendered manifest as multi-document YAML on stdout (NOTES.txt excluded). Errors go to
stderr with a non-zero exit status.
"""
import sys

import helm_python as helm
import yaml


def merged_values(files):
    values = {}
    for path in files:
        with open(path) as f:
            deep_merge(values, yaml.safe_load(f) or {})
    return values


def deep_merge(into, update):
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            deep_merge(into[key], value)
        else:
            into[key] = value


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    command, chart_dir = argv[1], argv[2]
    if command == "lint":
        values = merged_values(argv[3:])
        report = helm.lint(chart_dir, values, strict=True)
        problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
        for m in problems:
            print(f"{m.get('path')}: {m.get('error')}", file=sys.stderr)
        for e in report.get("errors", []) or []:
            print(e, file=sys.stderr)
        if problems or report.get("errors"):
            sys.exit(1)
        print(f"linted {report.get('total_charts_linted', 0)} chart(s): ok")
    elif command == "template":
        release, namespace = argv[3], argv[4]
        values = merged_values(argv[5:])
        chart = helm.Chart.load(chart_dir)
        chart.validate_schema(values)
        rendered = chart.render(values, name=release, namespace=namespace, is_install=True)
        docs = []
        for path in sorted(rendered):
            if path.endswith("NOTES.txt"):
                continue
            text = rendered[path].strip()
            if text:
                docs.append(f"# Source: {path}\n{text}")
        print("\n---\n".join(docs))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except helm.HelmError as e:
        print(f"helm: {e}", file=sys.stderr)
        sys.exit(2)
