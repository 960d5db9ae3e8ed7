//! dockhand: a Nomad task driver that runs tasks as Docker containers.
