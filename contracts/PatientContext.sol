// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ERC2771Context} from "@openzeppelin/contracts/metatx/ERC2771Context.sol";
import {PatientForwarder} from "./PatientForwarder.sol";

/// @title PatientContext
/// @notice Who acts: OpenZeppelin's ERC2771Context with the {PatientForwarder} as the one
/// trusted forwarder. A call the forwarder makes acts for the patient it appends (whose
/// signature, or a guardian's, the forwarder checked); any other call acts for its sender.
/// A patient that handed its identity to a new signing key, and that key itself, act only
/// through the forwarder: {_actor} refuses their direct calls.
abstract contract PatientContext is ERC2771Context {
    PatientForwarder private immutable _forwarder;

    /// @param forwarder_ The forwarder whose appended patient this contract believes.
    constructor(PatientForwarder forwarder_) ERC2771Context(address(forwarder_)) {
        _forwarder = forwarder_;
    }

    /// @notice The forwarder this contract trusts.
    function forwarder() external view returns (PatientForwarder) {
        return _forwarder;
    }

    /// The account acting: the forwarded patient, or a direct caller that may act directly.
    function _actor() internal view returns (address account) {
        account = _msgSender();
        if (msg.sender != address(_forwarder) && _forwarder.mustRelay(account)) {
            revert PatientForwarder.PatientForwarder_MustRelay(account);
        }
    }
}
