"""The service's web layer (FastAPI): server-rendered pages for people and a JSON API for
scripts, over the same store and intake.

People log in with a form, or through the OpenID issuer when one is configured (oidc.py), and
get a signed session cookie (Starlette's SessionMiddleware); every form carries the session's
CSRF token. Scripts send HTTP Basic credentials with each API call.
Either way a researcher reaches only their own submissions: another's id answers 404, as a
missing one does. The site-health matrix (`/sites`, `/api/sites`; health.py) is the same for
every researcher, and the form offers only the sites it leaves offered, saying which RSEs a
degraded one cannot read.
"""

# No `from __future__ import annotations` here: FastAPI reads the routes' annotations at run
# time, and they name dependencies local to create_app.
import datetime as dt
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from fastapi.templating import Jinja2Templates
from starlette.middleware.sessions import SessionMiddleware

from . import health, intake, oidc, runs
from .model import Researcher, Submission
from .oidc import Provider
from .researchers import verify
from .runs import RunPaths
from .store import Store
from .worker import Settings

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
UPLOAD_CHUNK = 1024**2


def size(nbytes: float | None) -> str:
    """Bytes for a person: B, KiB, MiB, GiB."""
    if nbytes is None:
        return ""
    for unit in ("B", "KiB", "MiB"):
        if abs(nbytes) < 1024:
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} GiB"


TEMPLATES.env.filters["size"] = size
TEMPLATES.env.filters["since"] = health.since
TEMPLATES.env.filters["gist"] = health.gist


@dataclass
class Context:
    settings: Settings
    conninfo: str
    session_key: str
    secure_cookies: bool
    queue_lock: Any  # threading.Lock shared with the workers
    oidc: Provider | None = None  # logins through an OpenID issuer too

    @contextmanager
    def store(self) -> Iterator[Store]:
        store = Store(self.conninfo)
        try:
            yield store
        finally:
            store.close()


def create_app(ctx: Context) -> FastAPI:
    app = FastAPI(title="lofar-datalake: workflow testing on the DataLake", docs_url=None,
                  redoc_url=None)
    # SameSite=Lax, not Strict: coming back from the OpenID issuer (another site) is a
    # top-level GET that must carry the cookie, which holds the login's state, nonce and PKCE
    # verifier. Lax still withholds it from other sites' POSTs, and every form's CSRF token
    # remains the defence against forged ones.
    app.add_middleware(SessionMiddleware, secret_key=ctx.session_key, same_site="lax",
                       https_only=ctx.secure_cookies, max_age=8 * 3600)
    basic = HTTPBasic(auto_error=False)

    def page_user(request: Request) -> Researcher:
        user = ctx.settings.researchers.get(str(request.session.get("user", "")))
        if user is None:
            raise HTTPException(303, headers={"Location": "/login"})
        return user

    def api_user(credentials: Annotated[HTTPBasicCredentials | None, Depends(basic)]
                 ) -> Researcher:
        user = ctx.settings.researchers.get(credentials.username) if credentials else None
        if credentials is None or not verify(user, credentials.password) or user is None:
            raise HTTPException(401, "log in with your service login (HTTP Basic)",
                                headers={"WWW-Authenticate": 'Basic realm="lofar-datalake"'})
        return user

    def render(request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
        token = request.session.setdefault("csrf", secrets.token_urlsafe(32))
        return TEMPLATES.TemplateResponse(request, name, {"csrf": token, **values},
                                          status_code=status)

    def check_csrf(request: Request, token: str) -> None:
        if not secrets.compare_digest(token, str(request.session.get("csrf", ""))):
            raise HTTPException(403, "the form is stale: reload the page and submit again")

    def own(researcher: Researcher, submission_id: int) -> Submission:
        with ctx.store() as store:
            found = store.get(submission_id, researcher.name)
        if found is None:
            raise HTTPException(404, f"no submission {submission_id} of yours")
        return found

    def login_page(request: Request, status: int = 200, **values: Any) -> HTMLResponse:
        return render(request, "login.html", status,
                      oidc_issuer=ctx.oidc.issuer if ctx.oidc else "", **values)

    if ctx.oidc is not None:
        oidc.add_routes(app, ctx.oidc, ctx.settings.researchers, render)

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> HTMLResponse:
        return login_page(request)

    @app.post("/login")
    def login(request: Request, username: Annotated[str, Form()],
              password: Annotated[str, Form()], csrf: Annotated[str, Form()]) -> Any:
        check_csrf(request, csrf)
        user = ctx.settings.researchers.get(username)
        if not verify(user, password):
            return login_page(request, 401, error="unknown login or wrong password")
        request.session.clear()
        request.session["user"] = username
        return RedirectResponse("/", 303)

    @app.post("/logout")
    def logout(request: Request, csrf: Annotated[str, Form()]) -> RedirectResponse:
        check_csrf(request, csrf)
        request.session.clear()
        return RedirectResponse("/login", 303)

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request, user: Annotated[Researcher, Depends(page_user)]) -> HTMLResponse:
        return render(request, "home.html", user=user, **overview(user))

    @app.post("/submissions")
    async def submit_form(request: Request, user: Annotated[Researcher, Depends(page_user)],
                          csrf: Annotated[str, Form()], site: Annotated[str, Form()],
                          configfile: Annotated[str, Form()], dids: Annotated[str, Form()],
                          snakefile: Annotated[str, Form()] = "",
                          git_url: Annotated[str, Form()] = "",
                          git_commit: Annotated[str, Form()] = "",
                          archive: UploadFile | None = None) -> Any:
        check_csrf(request, csrf)
        found = await submit(user, site, configfile, dids, snakefile, git_url, git_commit,
                             archive)
        return RedirectResponse(f"/submissions/{found.id}", 303)

    @app.get("/submissions/{submission_id}", response_class=HTMLResponse)
    def submission_page(request: Request, submission_id: int,
                        user: Annotated[Researcher, Depends(page_user)]) -> HTMLResponse:
        found = own(user, submission_id)
        paths = RunPaths.of(ctx.settings.state, found.id)
        return render(request, "submission.html", user=user, s=found,
                      summary=runs.summary(found.verdict) if found.verdict else None,
                      log=runs.tail(paths.log), has_report=paths.report.is_file())

    @app.get("/submissions/{submission_id}/report/{path:path}")
    def report(submission_id: int, path: str,
               user: Annotated[Researcher, Depends(page_user)]) -> FileResponse:
        return report_file(own(user, submission_id), path)

    @app.get("/api/submissions")
    def api_history(user: Annotated[Researcher, Depends(api_user)]) -> dict[str, Any]:
        return {"researcher": user.name, **overview(user, for_api=True)}

    @app.post("/api/submissions", status_code=201)
    async def api_submit(user: Annotated[Researcher, Depends(api_user)],
                         site: Annotated[str, Form()], configfile: Annotated[str, Form()],
                         dids: Annotated[str, Form()], snakefile: Annotated[str, Form()] = "",
                         git_url: Annotated[str, Form()] = "",
                         git_commit: Annotated[str, Form()] = "",
                         archive: UploadFile | None = None) -> Any:
        found = await submit(user, site, configfile, dids, snakefile, git_url, git_commit,
                             archive)
        if found.error:
            raise HTTPException(422, {"id": found.id, "state": found.state,
                                      "error": found.error})
        return as_json(found)

    @app.get("/api/submissions/{submission_id}")
    def api_submission(submission_id: int,
                       user: Annotated[Researcher, Depends(api_user)]) -> dict[str, Any]:
        return as_json(own(user, submission_id), full=True)

    @app.get("/api/submissions/{submission_id}/log", response_class=PlainTextResponse)
    def api_log(submission_id: int, user: Annotated[Researcher, Depends(api_user)]) -> str:
        return runs.tail(RunPaths.of(ctx.settings.state, own(user, submission_id).id).log,
                         10_000)

    @app.get("/sites", response_class=HTMLResponse)
    def sites_page(request: Request,
                   user: Annotated[Researcher, Depends(page_user)]) -> HTMLResponse:
        return render(request, "sites.html", user=user, sites=site_health(),
                      rses=health.columns(ctx.settings.sites), probes=ctx.settings.probes,
                      now=dt.datetime.now(dt.UTC))

    @app.get("/api/sites")
    def api_sites(user: Annotated[Researcher, Depends(api_user)]) -> dict[str, Any]:
        sites = site_health()
        probes = ctx.settings.probes
        return {"probes": {"interval_s": probes.interval_s, "timeout_s": probes.timeout_s}
                if probes else None, "offered": health.offered(sites),
                "sites": health.as_json(sites, dt.datetime.now(dt.UTC))}

    def site_health() -> dict[str, health.SiteHealth]:
        """Each site's health; with the probes off, every site is not probed (and offered)."""
        matrix = []
        if ctx.settings.probes is not None:
            with ctx.store() as store:
                matrix = store.probe_matrix()
        return health.site_health(ctx.settings.sites, matrix)

    def overview(user: Researcher, for_api: bool = False) -> dict[str, Any]:
        with ctx.store() as store:
            history = store.history(user.name)
            usage = {"running": store.running(user.name), "queued": store.queued(user.name)}
        sites = site_health()
        return {"history": [as_json(s) for s in history] if for_api else history,
                "usage": usage, "limits": user.limits.__dict__,
                "sites": health.offered(sites),
                "cannot_read": {n: h.unreadable for n, h in sites.items()
                                if h.offered and h.unreadable}}

    async def submit(user: Researcher, site: str, configfile: str, dids: str, snakefile: str,
                     git_url: str, git_commit: str, archive: UploadFile | None) -> Submission:
        with tempfile.TemporaryDirectory(dir=ctx.settings.state / "service") as tmp:
            saved = await save_upload(archive, Path(tmp), user.limits.archive_bytes)
            request = intake.Request(
                site=site, configfile=configfile.strip(), dids=dids.split(),
                snakefile=snakefile.strip(), archive=saved,
                archive_name=Path(archive.filename or "upload").name if archive else "",
                git_url=git_url.strip(), git_commit=git_commit.strip())
            with ctx.store() as store:
                return intake.take(store, ctx.settings, user, request, ctx.queue_lock)

    def report_file(found: Submission, path: str) -> FileResponse:
        compare = RunPaths.of(ctx.settings.state, found.id).compare.resolve()
        target = (compare / (path or "report.html")).resolve()
        if not target.is_relative_to(compare) or not target.is_file():
            raise HTTPException(404, "no such file in this submission's report")
        return FileResponse(target)

    return app


async def save_upload(archive: UploadFile | None, directory: Path, limit: int) -> Path | None:
    """The uploaded archive as a file, refused once it passes `limit` bytes (the unpacked
    limit bounds the packed size too)."""
    if archive is None or not archive.filename:
        return None
    # Under its own name, so that errors about it say which file; only the last part of it.
    name = Path(archive.filename.replace("\\", "/")).name
    path = directory / (name if name not in ("", ".", "..") else "upload")
    size = 0
    with open(path, "wb") as out:
        while chunk := await archive.read(UPLOAD_CHUNK):
            size += len(chunk)
            if size > limit:
                out.close()
                shutil.rmtree(directory, ignore_errors=True)
                directory.mkdir()
                raise HTTPException(413, f"the archive is over your limit of "
                                         f"{limit / 1024**2:.0f} MiB")
            out.write(chunk)
    return path


def as_json(s: Submission, full: bool = False) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": s.id, "state": s.state.value, "site": s.site,
        "source": {"kind": s.source.kind, "ref": s.source.ref},
        "snakefile": s.snakefile, "configfile": s.configfile, "dids": s.dids,
        "created": s.created.isoformat(), "attempts": s.attempts, "progress": s.progress,
        "started": s.started.isoformat() if s.started else None,
        "finished": s.finished.isoformat() if s.finished else None,
        "exit_code": s.exit_code, "error": s.error,
        "summary": runs.summary(s.verdict) if s.verdict else None,
    }
    return {**record, "verdict": s.verdict} if full else record
