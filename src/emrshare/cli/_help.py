"""What ``--help`` shows beyond each command's docstring: one vocabulary of metavars and
an example per command, kept here so that every command reads alike.

:func:`polish` walks the built command tree once (when the root group first parses):
a flag shows no metavar (``--json``, not ``--json <bool>``), an option shows what it
takes in the words of :data:`METAVARS` (``--expires DURATION|DATE``), and every command
ends with its example.
``tests/unit/roles/test_cli_help.py`` checks that every command has an example and that
each example parses.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EXAMPLES", "METAVARS", "polish"]

#: Option → what it takes, as help shows it.
METAVARS: dict[str, str] = {
    "--profile": "NAME",
    "--data-dir": "DIR",
    "--password-file": "FILE",
    "--patient": "ADDRESS|PROFILE",
    "--to": "ADDRESS|PROFILE",
    "--category": "CATEGORY",
    "--media-type": "MIME",
    "--expires": "DURATION|DATE",
    "--threshold": "M",
    "--proxies": "N",
    "--batch-size": "N",
    "--purpose": "CODE",
    "--reason": "TEXT",
    "--role": "ROLE",
    "--kind": "patient|member",
    "--endpoint": "URL",
    "--output": "FILE|-",
    "--config": "FILE",
    "--log-level": "LEVEL",
    "--store": "local|ipfs",
    "--node": "anvil|ganache",
    "--report": "N",
    "--for": "ADDRESS|PROFILE",
    "--until": "DURATION|DATE",
    "--relay": "URL|off",
    "--network": "FILE",
    "--key-file": "FILE",
    "--host": "ADDRESS",
}

#: Command path → an example (the words after ``emrshare``).
# Ids of the drug examples (any 32 bytes in hex).
_BATCH, _SHIPMENT = "0x" + "b7" * 32, "0x" + "5a" * 32

EXAMPLES: dict[str, str] = {
    "version": "version",
    "init": "--profile alice init --kind patient",
    "register": "--profile alice register",
    "whoami": "--profile alice whoami --json",
    "restore": "--profile alice restore --shares shares.txt",
    "backup shamir": "--profile alice backup shamir --shares 5 --threshold 3",
    "audit": "--profile patient audit --html audit.html --png audit.png",
    "recover": "--profile hospital recover",
    "rotate": "--profile patient rotate",
    "proxy serve": "proxy serve --config proxy.toml",
    "relay serve": "relay serve --key-file relayer.key --port 8650",
    "proxy report": "proxy report evidence.emev",
    "record add": "--profile hospital record add cbc.pdf --patient patient --category lab-results",
    "record import": "--profile hospital record import exports/2024-06/ --patient patient "
    "--category lab-results",
    "record list": "--profile patient record list --category imaging",
    "record get": "--profile patient record get 0x1f2e3d4c -o scan.pdf",
    "fhir import": "--profile hospital-a fhir import patient-0001.json --patient patient --explain",
    "fhir read": "--profile hospital-b fhir read --patient patient --category lab "
    "--type Observation",
    "record provenance": "--profile patient record provenance --category lab-results "
    "--fhir-version R5",
    "grant add": "--profile patient grant add --to hospital --category lab-results --expires 30d",
    "grant list": "--profile patient grant list --active",
    "grant revoke": "--profile patient grant revoke 0x9a8b7c6d",
    "portal": "--profile patient portal --port 8700",
    "request add": "--profile insurer request add --patient patient --category lab-results "
    "--purpose HPAYMT --reason 'claim 1234'",
    "request list": "--profile patient request list --pending",
    "request approve": "--profile patient request approve 3 --expires 7d",
    "request deny": "--profile patient request deny 3",
    "writer add": "--profile patient writer add hospital --category lab-results",
    "writer remove": "--profile patient writer remove hospital --category lab-results",
    "writer list": "--profile patient writer list --category lab-results",
    "guardian add": "--profile patient guardian add mum --until 2030-01-01 --category lab-results",
    "guardian list": "--profile patient guardian list",
    "guardian withdraw": "--profile patient guardian withdraw mum",
    "guardian actions": "--profile patient guardian actions --json",
    "guardian act grant": "--profile mum guardian act grant --for patient --to hospital "
    "--category lab-results --expires 30d",
    "guardian act grants": "--profile mum guardian act grants --for patient --active",
    "guardian act revoke": "--profile mum guardian act revoke --for patient 0x9a8b7c6d",
    "guardian act requests": "--profile mum guardian act requests --for patient --pending",
    "guardian act approve": "--profile mum guardian act approve --for patient 3 --expires 7d",
    "guardian act deny": "--profile mum guardian act deny --for patient 3",
    "guardian act end-emergency": "--profile mum guardian act end-emergency --for patient 1",
    "member add": "--profile admin member add clinic-b --role provider",
    "member list": "member list --json",
    "member rotate-keys": "--profile hospital member rotate-keys",
    "member suspend": "--profile admin member suspend 0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC "
    "--report 1",
    "member approve": "--profile admin member approve 1",
    "member verify-report": "member verify-report 1",
    "member capabilities": "--profile admin member capabilities "
    "0x90F79bf6EB2c4f870365E785982E1f101E93b906 --set emergency",
    "emergency opt-in": "--profile patient emergency opt-in "
    "--categories allergies,medications,conditions --window 24h",
    "emergency declare": "--profile hospital emergency declare --patient patient "
    "--why 'unconscious, allergy check' --reason-code 1 "
    "--cosigner 0x90F79bf6EB2c4f870365E785982E1f101E93b906 --cosignature 0x454d4353...",
    "emergency cosign": "--profile hospital-b emergency cosign "
    "--clinician 0x90F79bf6EB2c4f870365E785982E1f101E93b906 --patient patient "
    "--reason-code 1 --valid-for 10m",
    "emergency read": "--profile hospital-a emergency read 3 allergies --out records",
    "emergency list": "--profile hospital-a emergency list --json",
    "emergency end": "--profile patient emergency end 3",
    "emergency withdraw": "--profile patient emergency withdraw",
    "emergency review": "--profile regulator emergency review 3 --mark reviewed",
    "notifications": "--profile patient notifications --json",
    "rx issue": "--profile hospital-a rx issue patient 'amoxicillin 500 mg capsule' "
    "--dosage '1 capsule 3 times a day' --fills 2 --valid-for 30d --code 308191",
    "rx show": "--profile pharmacy rx show patient 0x3f2a9c1e",
    "rx list": "--profile pharmacy rx list patient --json",
    "rx review": "--profile pharmacy rx review patient 0x3f2a9c1e",
    "rx dispense": "--profile pharmacy rx dispense patient 0x3f2a9c1e",
    "rx cancel": "--profile hospital-a rx cancel 0x" + "ab" * 32,
    "rx counts": "--profile regulator rx counts --json",
    "study list": "--profile patient study list --open --json",
    "study show": "--profile patient study show 0x" + "5e" * 32,
    "study join": "--profile patient study join 0x" + "5e" * 32,
    "study leave": "--profile patient study leave 0x" + "5e" * 32,
    "study points": "--profile patient study points 0x" + "5e" * 32,
    "study publish": "--profile researcher study publish protocol.pdf --needs lab-results "
    "--service deid --ethics IRB-2026-117 --ends-in 180d",
    "study release": "--profile researcher study release 0x" + "5e" * 32,
    "study datasets": "--profile researcher study datasets 0x" + "5e" * 32 + " --json",
    "study open": "--profile researcher study open 0x" + "5e" * 32 + " --out release.ndjson",
    "study close": "--profile researcher study close 0x" + "5e" * 32,
    "research serve": "--profile deid research serve --port 7801",
    "claims file": "--profile hospital-a claims file patient insurer encounters "
    "--record 0x3f2a9c1e5b7d40a1c2e4f6a8b0d2e4f6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c6d8 "
    "--item consultation:20000",
    "claims list": "--profile patient claims list --json",
    "claims show": "--profile insurer claims show 0xcd34ef56",
    "claims consent": "--profile patient claims consent 0xcd34ef56 --expires 14d",
    "claims read": "--profile insurer claims read 0xcd34ef56",
    "claims adjudicate": "--profile insurer claims adjudicate 0xcd34ef56 18000 "
    "--reason exceeds-limit",
    "claims report": "--profile regulator claims report --json",
    "drugs register": "--profile maker drugs register 09506000134352 L24A --expiry 2028-06-30 "
    "--quantity 1000 --certificate release.pdf",
    "drugs ship": f"--profile maker drugs ship distributor {_BATCH} 600 "
    "--invoice-number INV-1 --amount 1200000 --tax-id 91310000MA1K",
    "drugs receive": f"--profile distributor drugs receive {_SHIPMENT} --quantity 598",
    "drugs cancel": f"--profile maker drugs cancel {_SHIPMENT}",
    "drugs invoices": "--profile distributor drugs invoices --out handed-in/",
    "drugs dispense": f"--profile pharmacy drugs dispense {_BATCH} 2 --link 0x{'3c' * 32}",
    "drugs recall": f"--profile regulator drugs recall {_BATCH} --reason 'stability failure'",
    "drugs adverse": f"--profile hospital-a drugs adverse patient {_BATCH} "
    "--description 'urticaria after the second dose' --seriousness 2",
    "drugs audit": "--profile regulator drugs audit --invoices handed-in/ --csv audit.csv",
    "drugs trace": f"--profile regulator drugs trace {_BATCH}",
    "drugs check": "drugs check 09506000134352 L24A",
    "drugs export": "drugs export --out supply.jsonld",
    "drugs link": "--profile patient drugs link",
    "drugs mine": "--profile patient drugs mine --json",
    "drugs reveal": "--profile patient drugs reveal 0",
    "devnet up": "devnet up --proxies 3 --threshold 2",
    "devnet down": "devnet down --wipe",
    "devnet status": "devnet status --json",
}


def polish(group: Any) -> None:
    """Give every command under ``group`` its metavars and example (see the module);
    once per group."""
    if not getattr(group, "_emrshare_polished", False):
        _walk(group, [])
        group._emrshare_polished = True


def _walk(cmd: Any, path: list[str]) -> None:
    subs = getattr(cmd, "commands", None)
    for param in cmd.params:
        if param.param_type_name != "option":
            continue  # an argument shows its name in capitals already (FILE, RECORD_ID)
        if getattr(param, "is_flag", False):
            param.metavar = ""
        elif param.metavar is None:
            long = next((o for o in param.opts if o.startswith("--")), "")
            param.metavar = METAVARS.get(long)
    _flag_help(cmd)
    if subs:
        for name, sub in subs.items():
            _walk(sub, [*path, name])
        return
    example = EXAMPLES.get(" ".join(path))
    if example is not None and not cmd.epilog:
        cmd.epilog = f"Example: emrshare {example}"


def _flag_help(cmd: Any) -> None:
    # --help is made per invocation (get_help_option), not kept in cmd.params.
    make = cmd.get_help_option

    def get_help_option(ctx: Any) -> Any:
        option = make(ctx)
        if option is not None:
            option.metavar = ""
        return option

    cmd.get_help_option = get_help_option
