"""The oversight policy, the gate every email passes, abuse verdicts and throttles."""
