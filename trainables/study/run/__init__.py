"""Running a planned study on Ray: the runner's phases, the Ray trial, the cluster, the lock, checkpoints, the live
display, and the recovery of a resumed study."""
