"""The core's contracts: what channels, realtime and the other parts implement, and what the core
and the doors use, without either side importing the other."""
