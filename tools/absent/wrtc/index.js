'use strict'
// See package.json: js-ipfs catches this and runs without WebRTC transports.
throw new Error('wrtc is not installed (emrshare runs js-ipfs offline, without WebRTC)')
