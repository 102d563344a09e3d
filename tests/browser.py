"""A headless browser for the tests that look at pages (not a test module): the project checks
its pages by screenshots in a real browser. Open a local HTML file or a URL, save a PNG
screenshot, read the colours the browser computed (text and the background it is drawn on) and
their contrast ratio as WCAG defines it.

The browser is Debian's `chromium` package (scripts/install-system-deps.sh --tests), driven by
Playwright (PyPI `playwright`, pinned in the dev extra) through `executable_path`: Playwright's
own browser download comes from a CDN this machine cannot reach, and Debian's build is the one
the security updates reach. Playwright drives it fine (Chromium speaks the same DevTools
protocol), so the fallback of `chromium --headless --screenshot` and reading pixels was not
needed; computed styles are more exact than pixels anyway.

Privileges: a page is content from elsewhere, so Chromium runs with its own sandbox on
(`chromium_sandbox=True`: Playwright otherwise adds --no-sandbox) and, when the tests run as
root, as the unprivileged account `nobody` through `setpriv`, as the security tests run their
clients (tests/integration/unprivileged.py): root's Chromium refuses its sandbox. Playwright's
driver stays in the test's process and writes the screenshots; the browser only sees its own
private directory, so a local file is copied there before it is opened.

Set LOFAR_DATALAKE_SCREENSHOTS=DIR to keep a copy of every screenshot in DIR, for a person to
look at."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

UNPRIVILEGED = "nobody"  # the account tests/integration/unprivileged.py runs clients as
SCREENSHOTS_ENV = "LOFAR_DATALAKE_SCREENSHOTS"
CHROMIUM_ENV = "LOFAR_DATALAKE_CHROMIUM"  # another Chromium binary than Debian's, if need be
INSTALL_HINT = "install Debian's chromium (scripts/install-system-deps.sh --tests, as root)"


class BrowserMissing(RuntimeError):
    """No headless Chromium (or no Playwright) on this machine: the page tests cannot run."""


def find_chromium() -> str:
    """The Chromium binary: $LOFAR_DATALAKE_CHROMIUM, else Debian's `chromium` on PATH."""
    wanted = os.environ.get(CHROMIUM_ENV) or "chromium"
    found = shutil.which(wanted)
    if found is None:
        raise BrowserMissing(f"no headless Chromium ({wanted!r} not found): {INSTALL_HINT}")
    return found


@dataclass(frozen=True)
class Colour:
    """An sRGB colour, channels 0-255, alpha 0-1."""

    r: float
    g: float
    b: float
    a: float = 1.0

    @classmethod
    def parse(cls, css: str) -> Colour:
        """A colour as getComputedStyle gives it: `rgb(r, g, b)` or `rgba(r, g, b, a)`."""
        found = re.fullmatch(r"rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?\)", css)
        if found is None:
            raise ValueError(f"not an rgb()/rgba() colour: {css!r}")
        r, g, b, a = found.groups()
        return cls(float(r), float(g), float(b), 1.0 if a is None else float(a))

    def over(self, below: Colour) -> Colour:
        """This colour drawn over an opaque one (alpha compositing)."""
        mix = [x * self.a + y * (1 - self.a)
               for x, y in zip((self.r, self.g, self.b), (below.r, below.g, below.b), strict=True)]
        return Colour(*mix)

    def luminance(self) -> float:
        """Relative luminance (WCAG 2)."""
        def linear(channel: float) -> float:
            c = channel / 255
            return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

        return 0.2126 * linear(self.r) + 0.7152 * linear(self.g) + 0.0722 * linear(self.b)

    def __str__(self) -> str:
        return "#" + "".join(f"{round(c):02x}" for c in (self.r, self.g, self.b))


WHITE = Colour(255, 255, 255)


def contrast(a: Colour, b: Colour) -> float:
    """WCAG contrast ratio of two opaque colours, 1 to 21 (AA asks 4.5 for body text)."""
    light, dark = sorted((a.luminance(), b.luminance()), reverse=True)
    return (light + 0.05) / (dark + 0.05)


@dataclass(frozen=True)
class Text:
    """An element that shows text of its own, as the browser drew it."""

    where: str  # its tag and classes, with those of its table row if it is in one
    text: str
    colour: Colour  # composited over the background
    background: Colour  # the background it is drawn on: its own and its ancestors', composited

    @property
    def contrast(self) -> float:
        return contrast(self.colour, self.background)

    def __str__(self) -> str:
        return (f"{self.where} {self.text[:40]!r}: {self.colour} on {self.background}, "
                f"contrast {self.contrast:.2f}")


# For each element `selector` matches: its background composited from the root down (background
# images left out), its colour, and (texts) only visible elements with text nodes of their own.
_STYLES_JS = """([selector, texts]) => {
  const name = (e) => e.tagName.toLowerCase() + [...e.classList].map((c) => '.' + c).join('');
  const out = [];
  for (const el of document.querySelectorAll(selector)) {
    const own = [...el.childNodes].filter((n) => n.nodeType === 3 && n.textContent.trim());
    if (texts && (!own.length || !el.checkVisibility())) continue;
    const layers = [];
    for (let e = el; e; e = e.parentElement) layers.push(getComputedStyle(e).backgroundColor);
    const row = el.closest('tr');
    out.push({where: (row && row !== el ? name(row) + ' ' : '') + name(el),
              text: own.map((n) => n.textContent.trim()).join(' '),
              colour: getComputedStyle(el).color, layers: layers.reverse()});
  }
  return out;
}"""


def _background(layers: list[str]) -> Colour:
    drawn = WHITE  # the canvas
    for layer in layers:
        drawn = Colour.parse(layer).over(drawn)
    return drawn


def spki_pin(certificate: Path) -> str:
    """Base64 of the SHA-256 of a certificate's public key (SubjectPublicKeyInfo), as
    Chromium's --ignore-certificate-errors-spki-list takes it."""
    import base64
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    der = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


class Browser:
    """A headless Chromium with one page, `width` x `height` CSS pixels. Use it with `with`."""

    def __init__(self, width: int = 1280, height: int = 900,
                 trust: Path | None = None) -> None:
        """`trust`: a server certificate (PEM) whose key the browser accepts, for a server whose
        CA the browser's store does not hold (the testbed's): pinned by its public key, so
        that nothing else is let through."""
        self.width, self.height, self.trust = width, height, trust
        self._dir: Path | None = None
        self._playwright: Any = None
        self._context: Any = None
        self.page: Any = None  # Playwright's Page, for anything this class does not offer

    def __enter__(self) -> Browser:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError as exc:
            raise BrowserMissing(f"Playwright is not installed (the dev extra): {exc}") from exc
        chromium = find_chromium()
        self._dir = Path(tempfile.mkdtemp(prefix="lofar-datalake-browser-"))
        try:
            executable = self._executable(chromium)
            self._playwright = sync_playwright().start()
            self._context = self._playwright.chromium.launch_persistent_context(
                str(self._home / "profile"), executable_path=executable, headless=True,
                chromium_sandbox=True, viewport={"width": self.width, "height": self.height},
                env={**os.environ, "HOME": str(self._home)},
                args=[f"--ignore-certificate-errors-spki-list={spki_pin(self.trust)}"]
                if self.trust else [],
            )
        except Exception as exc:
            self.close()
            raise BrowserMissing(f"Chromium ({chromium}) did not start: {exc}") from exc
        self.page = self._context.pages[0] if self._context.pages else self._context.new_page()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    @property
    def _home(self) -> Path:
        assert self._dir is not None
        return self._dir / "home"

    def _executable(self, chromium: str) -> str:
        """Chromium itself, or as root a script that starts it as `nobody` in its own home."""
        home = self._home
        (home / "profile").mkdir(parents=True, mode=0o700)
        if os.geteuid() != 0:
            return chromium
        assert self._dir is not None
        self._dir.chmod(0o711)  # nobody may pass through to its home, see nothing else
        for path in (home, home / "profile"):
            shutil.chown(path, UNPRIVILEGED, "nogroup")
        script = self._dir / "chromium"
        script.write_text(
            "#!/bin/sh\n# Chromium as an unprivileged account (its sandbox refuses root).\n"
            f"exec setpriv --reuid {UNPRIVILEGED} --regid nogroup --clear-groups -- "
            f'{shlex.quote(chromium)} "$@"\n'
        )
        script.chmod(0o700)
        return str(script)

    def close(self) -> None:
        if self._context is not None:
            self._context.close()
            self._context = None
        if self._playwright is not None:
            self._playwright.stop()
            self._playwright = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def open(self, target: Path | str) -> None:
        """Load a local HTML file (copied into the browser's own directory: a page that is
        self-contained, or with its files beside it copied too) or a URL, and wait for it."""
        url = target
        if isinstance(target, Path):
            pages = Path(tempfile.mkdtemp(prefix="page-", dir=self._home))
            shutil.copy(target, pages / target.name)
            if os.geteuid() == 0:
                for path in (pages, pages / target.name):
                    shutil.chown(path, UNPRIVILEGED, "nogroup")
            url = (pages / target.name).as_uri()
        self.page.goto(str(url), wait_until="load")

    def upload(self, selector: str, file: Path) -> None:
        """Choose `file` in the file input `selector`, as a person picking it would: Chromium
        reads it itself, so it is copied where the browser's account may read it."""
        files = Path(tempfile.mkdtemp(prefix="upload-", dir=self._home))
        shutil.copy(file, files / file.name)
        if os.geteuid() == 0:
            for path in (files, files / file.name):
                shutil.chown(path, UNPRIVILEGED, "nogroup")
        self.page.set_input_files(selector, str(files / file.name))

    def sandboxed(self) -> bool:
        """Whether Chromium says its sandbox is on (chrome://sandbox; the page is left there)."""
        self.page.goto("chrome://sandbox")
        return "You are adequately sandboxed." in self.page.inner_text("body")

    def screenshot(self, out: Path, *, full_page: bool = True) -> Path:
        """The page as PNG in `out` (and a copy in $LOFAR_DATALAKE_SCREENSHOTS if set)."""
        out.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(out), full_page=full_page)
        keep = os.environ.get(SCREENSHOTS_ENV)
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(out, Path(keep) / out.name)
        return out

    def texts(self, selector: str = "body *") -> list[Text]:
        """Every visible element `selector` matches that shows text of its own, with the colour
        and background the browser drew it in."""
        return [self._text(found) for found in self.page.evaluate(_STYLES_JS, [selector, True])]

    def backgrounds(self, selector: str) -> list[Colour]:
        """The background each element `selector` matches is drawn on."""
        return [_background(found["layers"])
                for found in self.page.evaluate(_STYLES_JS, [selector, False])]

    @staticmethod
    def _text(found: dict[str, Any]) -> Text:
        background = _background(found["layers"])
        colour = Colour.parse(found["colour"]).over(background)
        return Text(found["where"], found["text"], colour, background)
