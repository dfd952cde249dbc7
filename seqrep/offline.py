"""Widgets in shared HTML with no network: the widget manager that renders a notebook's saved
widget state in a plain browser, pinned, fetched once, inlined into every exported page.

nbconvert's HTML loads that manager (@jupyter-widgets/html-manager) from a CDN when the page
is opened, so a reader offline or behind a firewall sees an empty output where the panel was.
Here the npm registry's package, at a pinned version and integrity, is fetched with npm at
set-up time (`make setup` runs `python -m seqrep.offline`; `run_notebooks` fetches it when it
is missing) into the environment (`<sys.prefix>/share/seqrep/`), with its licence beside it,
and `inline_html` puts it into the page: the HTML stays one self-contained file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from .errors import SeqrepError

PACKAGE = "@jupyter-widgets/html-manager"
VERSION = "1.0.15"  # the release for ipywidgets 8 (widget protocol 2)
# npm's integrity of the tarball (`npm view @jupyter-widgets/html-manager@1.0.15 dist.integrity`).
INTEGRITY = "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA=="
# What is kept of the tarball: {path in it: file name here}. The Font Awesome 5 solid font
# (weight 900) draws the icons of ipywidgets buttons; the manager would fetch it next to its
# script, so it is inlined too.
KEEP = {
    "package/dist/embed.js": "embed.js",
    "package/dist/1551f4f60c37af51121f.woff2": "fa-solid-900.woff2",
    "package/dist/embed.js.LICENSE.txt": "THIRD-PARTY-NOTICES.txt",
    "package/package.json": "package.json",
}
# The tarball carries no licence file; package.json says BSD-3-Clause, whose text (that of the
# jupyter-widgets/ipywidgets repository it is built from) is kept in the package.
LICENSE = Path(__file__).resolve().parent / "templates" / "html-manager-LICENSE.txt"


def bundle_dir() -> Path:
    """Where the fetched manager lives: inside the environment, one folder per version."""
    return Path(sys.prefix) / "share" / "seqrep" / f"html-manager-{VERSION}"


def fetch(force: bool = False) -> Path:
    """Fetch the pinned widget manager with npm (once; `force` fetches again), check the
    tarball against INTEGRITY, and keep the files in KEEP and the licence in bundle_dir().
    Raises SeqrepError naming what failed and the fix (npm missing, no registry, a tarball
    that is not the pinned one). Returns bundle_dir()."""
    target = bundle_dir()
    if not force and all((target / name).exists() for name in [*KEEP.values(), "LICENSE"]):
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise SeqrepError(
            f"fetching {PACKAGE} {VERSION} (the widget manager of the offline HTML export) needs npm; "
            "install Node.js with npm (apt-get install npm, or https://nodejs.org) and run "
            "make setup, or python -m seqrep.offline."
        )
    with tempfile.TemporaryDirectory(prefix="seqrep-npm-") as tmp:
        done = subprocess.run([npm, "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", tmp],
                              capture_output=True, text=True, timeout=600, cwd=tmp)
        tarballs = list(Path(tmp).glob("*.tgz"))
        if done.returncode or not tarballs:
            raise SeqrepError(
                f"npm pack {PACKAGE}@{VERSION} failed (exit {done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-600:]}. Check the network and the npm "
                "registry setting (npm config get registry), then run make setup again."
            )
        digest = "sha512-" + base64.b64encode(hashlib.sha512(tarballs[0].read_bytes()).digest()).decode()
        if digest != INTEGRITY:
            raise SeqrepError(
                f"{tarballs[0].name} from the npm registry is not the pinned {PACKAGE} {VERSION} "
                f"(integrity {digest[:30]}..., expected {INTEGRITY[:30]}...); refusing to inline "
                "it. Check the registry (npm config get registry)."
            )
        staging = Path(tmp) / "bundle"
        staging.mkdir()
        with tarfile.open(tarballs[0]) as tar:
            for member, name in KEEP.items():
                (staging / name).write_bytes(tar.extractfile(member).read())
        shutil.copyfile(LICENSE, staging / "LICENSE")
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), target)
    return target


def inline_html() -> str:
    """HTML for the end of an exported page: the manager's script and the icon font,
    inlined, so the page renders its widget state without a single request.

    The script is given a blob: URL rather than written as an inline <script>: it locates its
    assets from its own URL and stops at start-up without one. Those assets are its fonts,
    which it would then look for next to that URL, where there are none; once it has run, its
    Font Awesome @font-face rules are replaced by one for the inlined solid font (the icons
    ipywidgets buttons use), before the widgets render at the page's load event.
    """
    folder = fetch()
    meta = json.loads((folder / "package.json").read_text(encoding="utf-8"))
    # A JSON string is a JavaScript string; escaping every "<" keeps "</script>" and "<!--"
    # in the bundle from ending or changing the script element around it.
    source = json.dumps((folder / "embed.js").read_text(encoding="utf-8")).replace("<", "\\u003c")
    font = base64.b64encode((folder / "fa-solid-900.woff2").read_bytes()).decode("ascii")
    return f"""
<!-- {meta['name']} {meta['version']} ({meta['license']}; its licence and third-party notices are
kept in {folder.name}/ by seqrep's set-up) and the Font Awesome Free 5 solid font
(https://fontawesome.com/license/free; font: SIL OFL 1.1), inlined: the widgets on this page
render from their saved state with no network. -->
<script>
(function () {{
  function blob(data, type) {{ return URL.createObjectURL(new Blob([data], {{type: type}})); }}
  var script = document.createElement("script");
  script.onload = function () {{
    for (var s = 0; s < document.styleSheets.length; s++) {{
      var sheet = document.styleSheets[s], rules = sheet.cssRules;
      for (var i = rules.length - 1; i >= 0; i--) {{
        if (rules[i] instanceof CSSFontFaceRule && /Font Awesome/.test(rules[i].style.fontFamily)) sheet.deleteRule(i);
      }}
    }}
    var font = Uint8Array.from(atob("{font}"), function (c) {{ return c.charCodeAt(0); }});
    var style = document.createElement("style");
    style.textContent = '@font-face {{font-family: "Font Awesome 5 Free"; font-style: normal; ' +
      'font-weight: 900; font-display: block; src: url(' + blob(font, "font/woff2") + ') format("woff2");}}';
    document.head.appendChild(style);
  }};
  script.src = blob({source}, "text/javascript");
  document.head.appendChild(script);
}})();
</script>
"""


if __name__ == "__main__":
    try:
        print(f"{PACKAGE} {VERSION}: {fetch()}")
    except SeqrepError as err:
        sys.exit(f"seqrep.offline: {err}")
