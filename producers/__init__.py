"""Producers: provider pollers, adapters, the replay provider and the simulator."""
