"""The planner's workspace: server-rendered pages under ``/ui`` over the same planner, model and plan store
as the JSON API (the handlers call :func:`uplift.api.routes.plans.store_plan`, :class:`PlanService` and
:class:`PlanStore`, never a copy of their logic). Every page needs a signed-in session; every POST form
carries the session's CSRF token. Not part of the OpenAPI schema."""

from __future__ import annotations

import json
import math
import secrets
from collections import OrderedDict
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from uplift.api.modelstore import ModelBundle
from uplift.api.planning import request_key
from uplift.api.planstore import PlanLabels, PlanStore, now
from uplift.api.routes.plans import store_plan
from uplift.api.schemas import PlanRequest
from uplift.api.web import charts, exports, views
from uplift.api.web.access import check_csrf, current_session, set_session_cookie, sign_in_name
from uplift.api.web.planform import form_from_request, group_choices, read_plan_form, value_choices
from uplift.api.web.render import PAGE_HEADERS, ROOT, page, render
from uplift.api.web.sessions import COOKIE, SIGN_IN_COOKIE, Session
from uplift.errors import UpliftError

__all__ = ["plan_context", "router"]

router = APIRouter(prefix=ROOT, include_in_schema=False)
Signed = Annotated[Session, Depends(current_session)]
FLOOR_KINDS = (("spend_share", "spend"), ("contact_share", "contacts"), ("conversion_share", "conversions"))
_CURVES: OrderedDict[str, dict] = OrderedDict()
_CURVES_KEPT = 32


# -- helpers ------------------------------------------------------------------------------------------
def _bundle(request: Request) -> ModelBundle | None:
    return request.app.state.model_store.bundle


def _store(request: Request) -> PlanStore:
    return request.app.state.plan_store


def _no_model(request: Request, session: Session) -> Response:
    reason = request.app.state.model_store.status.reason or "not loaded yet"
    return page("problem.html", 503, session=session, title="No model in service",
                message=f"No model is in service ({reason}); plans cannot be made until one is loaded.",
                link=f"{ROOT}/plans", link_text="Stored plans stay readable")


def _not_found(session: Session, plan_id: str) -> Response:
    return page("problem.html", 404, session=session, title="No such plan",
                message=f"There is no stored plan with id {plan_id[:40]!r} (never stored, or expired unapproved).",
                link=f"{ROOT}/plans", link_text="All stored plans")


def _load(request: Request, plan_id: str) -> dict | None:
    record = _store(request).get(plan_id[:64])
    return json.loads(record.response_json) if record is not None else None


def _svg(text: str) -> Response:
    return Response(text, media_type="image/svg+xml",
                    headers={**PAGE_HEADERS, "Cache-Control": "private, max-age=3600"})


def _local(path: str | None) -> str:
    """A redirect target inside the page, never elsewhere."""
    inside = path and path.startswith(ROOT + "/") and not path.startswith("//") and "\\" not in path
    return path if inside else ROOT + "/"


def _names(bundle: ModelBundle) -> tuple[list[str], list[str]]:
    arms = bundle.segments
    return (list(dict.fromkeys(arms["channel"].astype(str))), list(dict.fromkeys(arms["message"].astype(str))))


# -- signing in and out -------------------------------------------------------------------------------
@router.get("/sign-in")
def sign_in_form(request: Request, next: str = ROOT + "/", message: str = "") -> Response:  # noqa: A002
    csrf = secrets.token_urlsafe(24)
    response = page("sign_in.html", 200 if not message else 401, title="Sign in", csrf=csrf, next=_local(next),
                    message=message, open_mode=not request.app.state.tokens)
    set_session_cookie(response, request, SIGN_IN_COOKIE, csrf, max_age=3600)
    return response


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = await request.form()
    cookie = request.cookies.get(SIGN_IN_COOKIE, "")
    given = str(form.get("csrf", ""))
    if not cookie or not secrets.compare_digest(cookie.encode(), given.encode()):
        return sign_in_form(request, str(form.get("next", "")), "The sign-in form had expired; please try again.")
    found = sign_in_name(request, str(form.get("token", "")))
    if found is None:
        return sign_in_form(request, str(form.get("next", "")), "That is not one of the service's tokens.")
    secret, _ = request.app.state.web_sessions.open(name=found[0], digest=found[1])
    response = RedirectResponse(_local(str(form.get("next", ""))), status_code=303)
    set_session_cookie(response, request, COOKIE, secret,
                       max_age=int(request.app.state.web_sessions.lifetime.total_seconds()))
    response.delete_cookie(SIGN_IN_COOKIE, path="/")
    return response


@router.post("/sign-out")
async def sign_out(request: Request, session: Signed) -> Response:
    check_csrf(session, await request.form())
    request.app.state.web_sessions.close(request.cookies.get(COOKIE))
    response = RedirectResponse(f"{ROOT}/sign-in", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


# -- overview and segments ----------------------------------------------------------------------------
@router.get("/")
def overview(request: Request, session: Signed) -> Response:
    bundle = _bundle(request)
    if bundle is None:
        return page("overview.html", session=session, active="overview", title="Overview", bundle=None,
                    reason=request.app.state.model_store.status.reason or "not loaded yet")
    settings = request.app.state.settings
    return page("overview.html", session=session, active="overview", title="Overview", bundle=bundle,
                prov=bundle.provenance, interval=bundle.interval, min_size=settings.min_segment_size,
                arms=[a for a in bundle.arms if a != bundle.control], averages=_averages(bundle),
                counts={k: int(bundle.segments_of(k)["segment"].nunique()) for k in ("targetable", "persona")})


def _averages(bundle: ModelBundle) -> list[dict]:
    from uplift.allocation.breakdown import average_effects

    table = bundle.segments_of("targetable")
    if table.empty:
        table = bundle.segments
    return average_effects(table, interval=bundle.interval).sort_values("effect", ascending=False).to_dict("records")


@router.get("/charts/effects-v{version}.svg")
async def effects_chart(request: Request, session: Signed, version: int) -> Response:
    bundle = _bundle(request)
    if bundle is None:
        return _no_model(request, session)
    return _svg(await run_in_threadpool(lambda: charts.svg(charts.effects_spec(_averages(bundle)))))


@router.get("/segments")
def segments(request: Request, session: Signed, kind: str = "", message: str = "", channel: str = "",
             group: str = "", q: str = "") -> Response:
    from uplift.api.modelstore import safe_segments
    from uplift.api.routes.segments import _released

    bundle = _bundle(request)
    if bundle is None:
        return _no_model(request, session)
    settings = request.app.state.settings
    shown = safe_segments(bundle.segments, settings.min_segment_size)["segment"]
    table = _released(bundle, request)
    table = table[table["segment"].isin(shown)]
    page_no = _int(request.query_params.get("page"), 1)
    f = {"kind": kind[:20], "message": message[:100], "channel": channel[:100], "group": group[:100], "q": q[:100]}
    rows, matched, pages = views.segments_page(table, kind=f["kind"], message=f["message"], channel=f["channel"],
                                               group=f["group"], text=f["q"], page=page_no)
    channels, messages = _names(bundle)
    options = [(f"{c}={v}", f"{c.replace('_', ' ')}: {v}") for c in ("gender", "age_band", "municipality")
               if c in table.columns for v in sorted(table[c].astype(str).unique()) if v not in ("any", "nan")]
    options += [(str(c)[len("group__"):], f"group: {str(c)[len('group__'):]}") for c in table.columns
                if str(c).startswith("group__")]
    return page("segments.html", session=session, active="segments", title="Segments", bundle=bundle, rows=rows,
                matched=matched, pages=pages, page=min(page_no, pages), f=f, channels=channels, messages=messages,
                group_options=options, interval=bundle.interval, min_size=settings.min_segment_size,
                page_link=lambda n: urlencode({**{k: v for k, v in f.items() if v}, "page": n}))


def _int(text: str | None, default: int) -> int:
    try:
        return max(1, min(int(text or default), 1_000_000))
    except ValueError:
        return default


# -- building a plan ----------------------------------------------------------------------------------
def _build_context(request: Request, bundle: ModelBundle) -> dict:
    planner = request.app.state.planner
    channels, messages = _names(bundle)
    tables = planner.funnel_tables
    values = value_choices([] if tables is None else tables.values(bundle.run_id), planner.policy,
                           outcome=bundle.provenance.outcome or "the model's outcome")
    return {"policy": planner.policy, "channels": channels, "messages": messages,
            "groups": group_choices(bundle.segments, planner.policy), "values": values}


def _build_page(request: Request, session: Session, bundle: ModelBundle, form, problems: list[str],
                status_code: int = 200, notice: str | None = None) -> Response:
    ctx = _build_context(request, bundle)
    budget = _float(form.budget, 20000.0)
    top = max(50000.0, 2 * budget)
    floors = list(form.floors)
    from uplift.api.web.planform import FloorRow

    floors.append(FloorRow(keep=True))  # one more, to add a floor
    supersedes = form.supersedes or ""
    return page("build.html", status_code, session=session, active="build", title="Build a plan", bundle=bundle,
                prov=bundle.provenance, form=form, floors=floors, groups=ctx["groups"], floor_kinds=FLOOR_KINDS,
                channels=ctx["channels"], messages=ctx["messages"], values=ctx["values"], problems=problems,
                model_notice=notice,
                slider_max=int(top), slider_step=max(1, int(top / 500)), slider_value=int(min(budget, top)),
                supersedes=supersedes, supersedes_label=f"plan {supersedes[:8]}")


def _float(text: str, default: float) -> float:
    try:
        value = float(str(text).replace(",", "").replace(" ", ""))
    except ValueError:
        return default
    return value if math.isfinite(value) and value >= 0 else default


@router.get("/plan")
def build(request: Request, session: Signed) -> Response:
    bundle = _bundle(request)
    if bundle is None:
        return _no_model(request, session)
    ctx = _build_context(request, bundle)
    start = request.query_params.get("from", "")[:64]
    stored = _load(request, start) if start else None
    base = None
    if stored is not None:
        try:
            base = PlanRequest.model_validate(stored["request"])
        except ValueError:
            base = None
    try:
        form = form_from_request(base, ctx["policy"], ctx["channels"], ctx["messages"])
    except UpliftError:  # a stored plan's rules the policy no longer takes: start from the policy
        form = form_from_request(None, ctx["policy"], ctx["channels"], ctx["messages"])
    if stored is not None and stored.get("approved_at"):
        form.supersedes = stored["id"]
    return _build_page(request, session, bundle, form, [])


def _read(request: Request, bundle: ModelBundle, form_data):
    ctx = _build_context(request, bundle)
    return read_plan_form(form_data, policy=ctx["policy"], channels=ctx["channels"], messages=ctx["messages"],
                          groups=ctx["groups"], values=ctx["values"])


def _swap_notice(bundle: ModelBundle, form_data) -> str | None:
    opened = str(form_data.get("model_version", ""))
    if opened.isdigit() and int(opened) != bundle.version:
        return (f"The model changed while the form was open: it was v{opened}, the model in service is now "
                f"v{bundle.version}. The plan below is made with v{bundle.version}.")
    return None


@router.post("/plans")
async def make_plan(request: Request, session: Signed) -> Response:
    form_data = await request.form()
    check_csrf(session, form_data)
    bundle = _bundle(request)
    if bundle is None:
        return _no_model(request, session)
    form, plan_request, problems = _read(request, bundle, form_data)
    notice = _swap_notice(bundle, form_data)
    if plan_request is None:
        return _build_page(request, session, bundle, form, problems, 422, notice)
    supersedes = form.supersedes if form.supersedes and _store(request).get(form.supersedes) is not None else None
    try:
        record = await run_in_threadpool(store_plan, bundle, request.app.state.planner, _store(request), plan_request,
                                         labels=PlanLabels(created_by=session.name, supersedes=supersedes))
    except UpliftError as exc:
        return _build_page(request, session, bundle, form, [str(exc)[:500]], 422, notice)
    target = f"{ROOT}/plans/{record.id}" + ("?" + urlencode({"swapped": form_data.get("model_version")}) if notice
                                            else "")
    return RedirectResponse(target, status_code=303)


@router.get("/plan/preview")
async def preview(request: Request, session: Signed) -> Response:
    bundle = _bundle(request)
    if bundle is None:
        return _no_model(request, session)
    _, plan_request, problems = _read(request, bundle, request.query_params)
    if plan_request is None:
        html = "<p class=\"error\">" + "; ".join(_escape(p) for p in problems) + "</p>"
        return Response(html, media_type="text/html", headers=PAGE_HEADERS)
    try:
        computed = await run_in_threadpool(request.app.state.planner.plan, bundle, plan_request)
    except UpliftError as exc:
        return Response(f"<p class=\"error\">{_escape(str(exc)[:300])}</p>", media_type="text/html",
                        headers=PAGE_HEADERS)
    plan = json.loads("{" + computed.fragment + "}")
    return Response(render("preview.html", plan=plan), media_type="text/html", headers=PAGE_HEADERS)


def _escape(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))


# -- reading, keeping, approving a plan ---------------------------------------------------------------
_CELL_COLUMNS = (("segment", "segment", False), ("message", "message", False), ("channel", "channel", False),
                 ("contacts", "contacts", True), ("spend", "spend", True),
                 ("expected_conversions", "expected conversions", True), ("", "interval", True),
                 ("cost_per_conversion", "EUR per conversion", True), ("marginal_cost", "EUR of the next", True))


def _cell_columns(plan: dict) -> tuple[tuple[str, str, bool], ...]:
    """The cells table's columns (sort key, label, numeric), labelled in units of value for a plan on value."""
    if not plan.get("value"):
        return _CELL_COLUMNS
    words = {"expected_conversions": "expected value", "cost_per_conversion": "EUR per unit of value"}
    return tuple((key, words.get(key, label), numeric) for key, label, numeric in _CELL_COLUMNS)


def _references(plan: dict) -> list[tuple[str, dict]]:
    return [(f"{name.replace('_', ' ')} plan", t) for name, t in plan["references"].items()]


@router.get("/plans")
def plans(request: Request, session: Signed) -> Response:
    page_no = _int(request.query_params.get("page"), 1)
    per = 25
    records, total = _store(request).list(limit=per, offset=(page_no - 1) * per)
    return page("plans.html", session=session, active="plans", title="Plans", records=records, total=total,
                page=page_no, pages=max(1, math.ceil(total / per)))


def plan_context(plan: dict, params, *, current_version: int | None, notice: str | None = None) -> dict:
    """What ``plan.html`` shows of a stored plan (its answer as the API gives it) under the query ``params``
    (cells filter, sort and page)."""
    query = views.CellQuery.of(params)
    rows, matched, pages = views.cells_page(plan["cells"], query)
    return dict(
        active="plans", title=plan.get("name") or f"Plan {plan['id'][:8]}", plan=plan, status=views.plan_status(plan),
        reference_rows=_references(plan), query=query, rows=rows, matched=matched, pages=pages,
        page=min(query.page, pages), cell_columns=_cell_columns(plan), model_notice=notice,
        cell_messages=sorted({c["message"] for c in plan["cells"]}),
        cell_channels=sorted({c["channel"] for c in plan["cells"]}), current_version=current_version,
        sort_link=lambda key: urlencode(query.link(sort=key, page=1,
                                                   order="asc" if key == query.sort and query.descending else "desc")),
        page_link=lambda n: urlencode(query.link(page=n)),
    )


@router.get("/plans/{plan_id}")
def plan_page(request: Request, session: Signed, plan_id: str) -> Response:
    plan = _load(request, plan_id)
    if plan is None:
        return _not_found(session, plan_id)
    bundle = _bundle(request)
    swapped = request.query_params.get("swapped", "")
    notice = (f"The model changed while the form was open (v{swapped[:6]} then); this plan is made with "
              f"v{plan['model_version']}." if swapped.isdigit() and int(swapped) != plan["model_version"] else None)
    return page("plan.html", session=session, **plan_context(
        plan, request.query_params, current_version=bundle.version if bundle is not None else None, notice=notice))


@router.get("/plans/{plan_id}/parts.svg")
async def parts_chart(request: Request, session: Signed, plan_id: str) -> Response:
    plan = _load(request, plan_id)
    if plan is None:
        return _not_found(session, plan_id)
    return _svg(await run_in_threadpool(lambda: charts.svg(charts.plan_parts_spec(plan.get("breakdown", [])))))


@router.post("/plans/{plan_id}/labels")
async def label(request: Request, session: Signed, plan_id: str) -> Response:
    form = await request.form()
    check_csrf(session, form)
    name = str(form.get("name", "")).strip()[:200]
    note = str(form.get("note", ""))[:4000]
    try:
        record = _store(request).label(plan_id[:64], name=name or None, note=note)
    except UpliftError as exc:
        return page("problem.html", 409, session=session, title="Not saved", message=str(exc)[:300],
                    link=f"{ROOT}/plans/{plan_id[:64]}", link_text="Back to the plan")
    if record is None:
        return _not_found(session, plan_id)
    return RedirectResponse(f"{ROOT}/plans/{record.id}#keep-h", status_code=303)


@router.post("/plans/{plan_id}/approve")
async def approve(request: Request, session: Signed, plan_id: str) -> Response:
    check_csrf(session, await request.form())
    record = _store(request).approve(plan_id[:64], by=session.name, at=now())
    if record is None:
        return _not_found(session, plan_id)
    return RedirectResponse(f"{ROOT}/plans/{record.id}#keep-h", status_code=303)


# -- what the next euro buys --------------------------------------------------------------------------
async def _curve(request: Request, bundle: ModelBundle, plan: dict) -> dict:
    plan_request = PlanRequest.model_validate(plan["request"])
    key = request_key(bundle, plan_request)
    hit = _CURVES.get(key)
    if hit is None:
        hit = await run_in_threadpool(request.app.state.planner.curve, bundle, plan_request)
        _CURVES[key] = hit
        while len(_CURVES) > _CURVES_KEPT:
            _CURVES.popitem(last=False)
    return hit


@router.get("/plans/{plan_id}/curve")
async def curve_page(request: Request, session: Signed, plan_id: str) -> Response:
    plan = _load(request, plan_id)
    if plan is None:
        return _not_found(session, plan_id)
    bundle = _bundle(request)
    if bundle is None:
        return _no_model(request, session)
    try:
        curve = await _curve(request, bundle, plan)
    except UpliftError as exc:
        return page("problem.html", 422, session=session, title="No curve", message=str(exc)[:300])
    here = next(p for p in curve["points"] if p["budget"] == curve["budget"])
    notice = (f"The curve is planned on the model in service, v{bundle.version}; the plan was made with "
              f"v{plan['model_version']}." if bundle.version != plan["model_version"] else None)
    return page("curve.html", session=session, active="plans", title="What the next euro buys", plan=plan,
                curve=curve, here=here, model_notice=notice)


@router.get("/plans/{plan_id}/curve.svg")
async def curve_chart(request: Request, session: Signed, plan_id: str) -> Response:
    plan = _load(request, plan_id)
    bundle = _bundle(request)
    if plan is None or bundle is None:
        return _not_found(session, plan_id) if plan is None else _no_model(request, session)
    curve = await _curve(request, bundle, plan)
    return _svg(await run_in_threadpool(lambda: charts.svg(charts.budget_curve_spec(curve))))


# -- comparing, downloading ---------------------------------------------------------------------------
def _compared(request: Request) -> list[dict]:
    ids = list(dict.fromkeys(i[:64] for i in request.query_params.getlist("id")))[:6]
    return [p for p in (_load(request, i) for i in ids) if p is not None]


@router.get("/compare")
def compare(request: Request, session: Signed) -> Response:
    found = _compared(request)
    if len(found) < 2:
        return page("problem.html", 422, session=session, title="Compare plans",
                    message="Tick at least two stored plans to compare them.", link=f"{ROOT}/plans",
                    link_text="All stored plans")
    return page("compare.html", session=session, active="plans", title="Compare plans",
                cmp=views.compare_plans(found), interval=found[0]["totals"]["interval"],
                ids_query=urlencode([("id", p["id"]) for p in found]))


@router.get("/compare.svg")
async def compare_chart(request: Request, session: Signed) -> Response:
    found = _compared(request)
    rows = [{"plan": p.get("name") or f"plan {p['id'][:8]}", "name": part["name"], "spend": part["spend"]}
            for p in found for part in p.get("breakdown", []) if part["dimension"] == "channel"]
    return _svg(await run_in_threadpool(lambda: charts.svg(charts.compare_spec(rows))))


@router.get("/plans/{plan_id}/plan.csv")
def download_csv(request: Request, session: Signed, plan_id: str) -> Response:
    plan = _load(request, plan_id)
    if plan is None:
        return _not_found(session, plan_id)
    return Response(exports.plan_csv(plan), media_type="text/csv; charset=utf-8", headers={
        **PAGE_HEADERS, "Content-Disposition": f'attachment; filename="{exports.file_stem(plan)}.csv"'})


@router.get("/plans/{plan_id}/plan.xlsx")
def download_xlsx(request: Request, session: Signed, plan_id: str) -> Response:
    plan = _load(request, plan_id)
    if plan is None:
        return _not_found(session, plan_id)
    return Response(exports.plan_xlsx(plan),
                    media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={**PAGE_HEADERS,
                             "Content-Disposition": f'attachment; filename="{exports.file_stem(plan)}.xlsx"'})


@router.get("/plans/{plan_id}/summary")
def summary(request: Request, session: Signed, plan_id: str) -> Response:
    plan = _load(request, plan_id)
    if plan is None:
        return _not_found(session, plan_id)
    return page("summary.html", session=session, plan=plan, status=views.plan_status(plan),
                reference_rows=_references(plan))
