"""The gateway's side of the NATS bus: run requests out, run events in, stop requests out."""
