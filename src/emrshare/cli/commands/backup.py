"""``restore`` and ``backup shamir``: a patient's identity from its backup alone, and the
SLIP-39 shares of that backup."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from emrshare.cli import _render as render
from emrshare.cli._context import JsonOpt, emit_json, err, out, safe, state, want_json

if TYPE_CHECKING:
    from emrshare.roles import RestoreReport

app = typer.Typer(no_args_is_help=True, help="Back up a patient identity.")

_FileOpt = Annotated[
    Path | None,
    typer.Option(
        metavar="FILE|-", help="read SLIP-39 shares, one per line, from FILE (- for stdin)"
    ),
]


_LABEL = re.compile(r"^\s*share\s+\d+:\s*", re.IGNORECASE)


def _read_passphrase(path: Path | None) -> bytes:
    from emrshare.errors import ConfigurationError

    if path is None:
        return b""
    try:
        return path.read_bytes().rstrip(b"\n")
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read the passphrase file {path}: {exc.strerror}; fix --passphrase-file"
        ) from exc


def _read_shares(source: Path) -> list[str]:
    from emrshare.errors import ConfigurationError

    try:
        text = sys.stdin.read() if str(source) == "-" else source.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read the shares file {source}; check the path") from exc
    # As `backup shamir` prints them ("share 2: …") or bare.
    return [_LABEL.sub("", line) for line in text.splitlines()]


def _read_words() -> str:
    # A terminal gets a prompt that does not echo; a script pipes the words on stdin.
    if sys.stdin.isatty():
        words: str = typer.prompt("the 24 words of the backup", hide_input=True)
        return words
    return sys.stdin.readline()


def restore(
    ctx: typer.Context,
    shares: _FileOpt = None,
    passphrase_file: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="the SLIP-39 shares' passphrase, if they have one"),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Restore a patient identity into --profile from its 24 words (asked without echo)
    or from SLIP-39 shares (--shares): a new keystore, and the categories, epochs, grants,
    writers and pending requests found on chain. Running it again resumes or refreshes."""
    from emrshare.roles._restore import backup_keys, restore_profile

    st = state(ctx)
    profiles = st.profiles
    name = st.profile_name
    if profiles.exists(name) and profiles.get(name).kind != "patient":
        from emrshare.errors import ProfileExists

        raise ProfileExists(name, f"profile {name!r} already exists and is a member profile")
    if shares is not None:
        keys = backup_keys(
            shares=_read_shares(shares), passphrase=_read_passphrase(passphrase_file)
        )
    else:
        keys = backup_keys(mnemonic=_read_words())
    profile, patient, found, created = restore_profile(
        profiles, name, st.network(), keys, lambda: st.password(confirm=True)
    )
    st._facade = patient  # closed with the command
    if want_json(ctx, json_out):
        emit_json({"profile": profile.name, "created": created, **found.to_json()})
        return
    verb = "restored" if created else "refreshed (the profile was already there)"
    out.print(f"{verb} patient profile {safe(profile.name)} → {profile.address}", markup=False)
    for line in _report_lines(found):
        out.print(line, markup=False)


def _report_lines(found: RestoreReport) -> list[str]:
    cats = ", ".join(f"{safe(c)} (epoch {e})" for c, e in found.epochs.items()) or "none"
    lines = [f"categories: {cats}"]
    if found.retired:
        lines.append(f"retired masters: {found.retired} (records under them stay readable)")
    lines.append(f"grants: {len(found.grants)} ({len(found.active_grants)} active)")
    for g in found.active_grants:
        lines.append(
            f"  {render.short_id(bytes(g.policy_id))} {safe(g.category or '?')} epoch "
            f"{g.epoch} → {render.who(g.grantee)} until {render.when(g.expiry)}"
        )
    for c, writers in found.writers.items():
        if writers:
            lines.append(f"writers of {safe(c)}: {', '.join(render.who(w) for w in writers)}")
    lines.append(f"pending requests: {len(found.requests)}")
    for r in found.requests:
        lines.append(
            f"  #{r.request_id} from {render.who(r.requester)} for {safe(r.category or '?')}"
        )
    return lines


@app.command("shamir")
def backup_shamir(
    ctx: typer.Context,
    shares: Annotated[int, typer.Option(metavar="N", help="how many shares to make (2-16)")] = 5,
    threshold: Annotated[int, typer.Option(help="how many restore the identity")] = 3,
    passphrase_file: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="protect the shares with the passphrase in FILE"),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Split this patient's master secret into SLIP-39 shares, printed once: any
    --threshold of them restore the identity (`emrshare restore --shares`)."""
    from emrshare.crypto import PatientKeys
    from emrshare.errors import ConfigurationError, InvalidInput

    if not 2 <= threshold <= shares <= 16:
        raise InvalidInput(
            f"--threshold {threshold} of --shares {shares} is not possible: use "
            "2 <= threshold <= shares <= 16"
        )
    st = state(ctx)
    keys = st.keys()
    if not isinstance(keys, PatientKeys):
        raise ConfigurationError(
            f"profile {st.profile_name!r} is a member: only a patient's identity is backed "
            "up as shares (a member keeps its 24 words)"
        )
    made = keys.to_shamir_shares(threshold, shares, passphrase=_read_passphrase(passphrase_file))
    if want_json(ctx, json_out):
        emit_json({"address": keys.address, "threshold": threshold, "shares": made})
        return
    err.print(
        f"Warning: these {shares} shares are shown only now. Any {threshold} of them restore "
        "this identity: write each on its own card and keep them in different places, "
        "with different people.",
        markup=False,
    )
    for i, share in enumerate(made, 1):
        out.print(f"share {i}: {share}", markup=False)
