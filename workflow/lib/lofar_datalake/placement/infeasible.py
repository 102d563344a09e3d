"""Why no placement exists, said in terms of the sites file and the data.

"Infeasible" alone tells nobody what to change. Cheap checks come first and name the subband,
RSE or site at fault with the numbers; only when they all pass is the program solved, and if it
still has no solution each constraint family is dropped in turn to find the one that cannot be
met, described by what the best placement without it would need.
"""

from __future__ import annotations

from collections.abc import Mapping

from . import model
from .model import GIB, Problem, Site, Subband


class PlanInfeasible(ValueError):
    """No placement meets the constraints; the message says which and by how much."""


def precheck(problem: Problem) -> None:
    for check in (_no_sites, _unreadable, _kept_unowned, _kept_too_big, _total_disk):
        message = check(problem)
        if message:
            raise PlanInfeasible(message)


def _no_sites(problem: Problem) -> str:
    return "" if problem.sites else "the sites file lists no site"


def _unreadable(problem: Problem) -> str:
    for sb in problem.subbands:
        if not sb.replicas:
            return f"subband {sb.id} ({sb.did or 'no DID'}) has no AVAILABLE replica on any RSE"
        if not any(problem.source(sb, site) for site in problem.sites):
            reads = "; ".join(f"{s.name} reads {', '.join(sorted(s.readable))}"
                              for s in problem.sites)
            return (f"no site may read subband {sb.id}: its AVAILABLE replicas are on "
                    f"{', '.join(sb.replicas)}; {reads} (add one of its RSEs to a site's "
                    "`reads`)")
    return ""


def _kept_unowned(problem: Problem) -> str:
    owned = {s.rse for s in problem.sites}
    unowned = [r for r in problem.keep_at_site if r not in owned]
    if not unowned:
        return ""
    return (f"keep_at_site names {', '.join(unowned)}, the RSE of no site (the sites' RSEs: "
            f"{', '.join(sorted(owned))}): its data could be preprocessed nowhere")


def _kept_too_big(problem: Problem) -> str:
    for site in problem.sites:
        if site.disk_bytes is None or site.rse not in problem.keep_at_site:
            continue
        kept = [sb for sb in problem.subbands if problem.kept_at(sb) == (site,)]
        need = sum(sb.raw_bytes + sb.out_bytes for sb in kept)
        if need > site.disk_bytes:
            return (f"site {site.name}: {len(kept)} subbands must stay at {site.rse} "
                    f"(keep_at_site), {_gib(need)} raw and preprocessed, but its disk_gib "
                    f"allows {_gib(site.disk_bytes)}")
    return ""


def _total_disk(problem: Problem) -> str:
    if any(s.disk_bytes is None for s in problem.sites):
        return ""
    room = sum(s.disk_bytes or 0 for s in problem.sites)
    need = sum(sb.raw_bytes + sb.out_bytes for sb in problem.subbands)
    if need <= room:
        return ""
    each = ", ".join(f"{s.name} {_gib(s.disk_bytes or 0)}" for s in problem.sites)
    return (f"disk capacity: the {len(problem.subbands)} subbands need at least {_gib(need)} "
            f"(raw and preprocessed), the sites' disks hold {_gib(room)} in all ({each})")


def diagnose(problem: Problem, time_limit_s: float | None) -> PlanInfeasible:
    """The error for a program without solution: each family whose removal makes it solvable,
    with what the best placement without it would need."""
    found = []
    for family in model.FAMILIES:
        program = model.build(problem, relax=frozenset({family}))
        if model.run_solver(program, time_limit_s).found:
            placement, processing = model.read_placement(program)
            found.append(f"{family} cannot be met: without it the best placement needs "
                         f"{_explain(problem, family, placement, processing)}")
    if not found:
        return PlanInfeasible(
            f"no placement meets {', '.join(model.FAMILIES)} together, nor any two of them; "
            "check the sites' `reads`, keep_at_site and disk_gib against where the data is")
    if len(found) == 1:
        return PlanInfeasible(f"no placement meets every constraint: {found[0]}")
    return PlanInfeasible("no placement meets every constraint; relaxing any one of these "
                          "would allow one:\n  - " + "\n  - ".join(found))


def _explain(problem: Problem, family: str, placement: Mapping[str, str],
             processing: str) -> str:
    if family == "disk capacity":
        return _over_disk(problem, placement, processing)
    broken = [(sb, problem.site(placement[sb.id])) for sb in problem.subbands
              if not problem.allowed(sb, problem.site(placement[sb.id]))]
    return "; ".join(_why_not(problem, sb, site) for sb, site in broken[:5]) + (
        f" (and {len(broken) - 5} more)" if len(broken) > 5 else "")


def _why_not(problem: Problem, sb: Subband, site: Site) -> str:
    kept = problem.kept_at(sb)
    if kept and site not in kept:
        return (f"subband {sb.id}, kept at {', '.join(k.rse for k in kept)}, at {site.name}")
    return (f"subband {sb.id} (replicas on {', '.join(sb.replicas)}) at {site.name}, "
            f"which reads {', '.join(sorted(site.readable))}")


def _over_disk(problem: Problem, placement: Mapping[str, str], processing: str) -> str:
    used = {s.name: 0 for s in problem.sites}
    for sb in problem.subbands:
        used[placement[sb.id]] += sb.raw_bytes + sb.out_bytes
        if placement[sb.id] != processing:
            used[processing] += sb.out_bytes
    over = [f"{_gib(used[s.name])} at {s.name}, whose disk_gib allows {_gib(s.disk_bytes)}"
            for s in problem.sites
            if s.disk_bytes is not None and used[s.name] > s.disk_bytes]
    return ", ".join(over) or "more disk than the sites have"


def _gib(nbytes: int) -> str:
    return f"{nbytes / GIB:.2f} GiB"
