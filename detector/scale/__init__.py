"""Scale-out over NATS JetStream: a publisher cuts probe files into per-partition messages,
detector workers each own some partitions (per-SIM state, checkpointed with the stream
position), and a rig stage groups the machine-like SIMs the workers summarise.
See docs/scaling.md."""
