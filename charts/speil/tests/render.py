"""Renders the chart with Helm v4 (helm-python-sdk) and prints its objects as one JSON list.

    python render.py '<values as JSON>'

Used by the chart-driven cluster test (crates/speil/tests/it/chart.rs), which runs what the
DaemonSet renders; release and namespace are both `speil`.
"""

import json
import sys
from pathlib import Path

import helm_python as helm
import yaml

chart = helm.Chart.load(str(Path(__file__).resolve().parents[1]))
values = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
out = chart.render(values, name="speil", namespace="speil")
docs = [d for text in out.values() for d in yaml.safe_load_all(text) if d]
json.dump(docs, sys.stdout)
