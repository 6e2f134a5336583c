// Runs js-ipfs (npm `ipfs`, pinned in package.json) as an offline IPFS RPC daemon on loopback.
//
//   node jsipfs-daemon.mjs REPO API_PORT GATEWAY_PORT SWARM_PORT
//
// Started by src/emrshare/ipfsd.py (tests and `emrshare devnet up --store ipfs`). It uses
// js-ipfs's own Daemon class (what `jsipfs daemon` runs) with the node *not started*
// (`start: false`): libp2p and bitswap never run, so the node listens on no swarm port,
// dials nobody, and a block it lacks is "not found" at once instead of being wanted from
// peers forever (`jsipfs daemon --offline` still starts both). The config below turns
// off everything that could reach out even so: bootstrap peers, delegates, MDNS,
// WebRTC-star, pubsub, DHT routing, preload. The repo is initialised on first start
// (empty, Ed25519 identity); the ports are re-applied on every start.

// js-ipfs's dependency tree (mortice, it-queue, abort-error) calls Promise.withResolvers,
// which Node.js has only from 22 on. This is the standard polyfill.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve, reject
    const promise = new this((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}
// Repo files (the node's private key among them) are created 0600, directories 0700.
process.umask(0o077)

const [repo, api, gateway, swarm] = process.argv.slice(2)
if (!repo || ![api, gateway, swarm].every((p) => /^[0-9]+$/.test(p ?? ''))) {
  console.error('usage: node jsipfs-daemon.mjs REPO API_PORT GATEWAY_PORT SWARM_PORT')
  process.exit(2)
}

const config = {
  Addresses: {
    API: `/ip4/127.0.0.1/tcp/${api}`,
    Gateway: `/ip4/127.0.0.1/tcp/${gateway}`,
    RPC: '', // no gRPC-over-websocket server
    Swarm: [`/ip4/127.0.0.1/tcp/${swarm}`], // loopback only, and unused: libp2p is not started
    Announce: [],
    NoAnnounce: [],
    Delegates: []
  },
  Bootstrap: [],
  Discovery: { MDNS: { Enabled: false }, webRTCStar: { Enabled: false } },
  Pubsub: { Enabled: false },
  Routing: { Type: 'none' },
  Swarm: { DisableNatPortMap: true }
}

const { Daemon } = await import('ipfs-daemon')
const daemon = new Daemon({
  repo,
  init: { emptyRepo: true, algorithm: 'Ed25519' },
  start: false,
  offline: true,
  preload: { enabled: false },
  config
})

let stopping = false
async function stop (signal) {
  if (stopping) return
  stopping = true
  console.log(`received ${signal}, stopping`)
  try {
    await daemon.stop()
  } finally {
    process.exit(0)
  }
}
process.on('SIGTERM', () => stop('SIGTERM'))
process.on('SIGINT', () => stop('SIGINT'))

await daemon.start()
console.log(`js-ipfs ${(await daemon._ipfs.version()).version} (offline) RPC API on http://127.0.0.1:${api}`)
console.log('Daemon is ready')
