"""The web chat widget's visitor side: Socket.IO namespace ``/widget`` on the agents' realtime
stack (see docs/channels/webchat.md). Visitors' messages go into the core's ingest; what agents
write comes back from the same replay log the agent sockets read, in order, replayed after a
reconnect. The inbox's policy (origins, limits, form) comes from the web chat channel, handed over
by the composition root as :class:`~realtime.widget.hooks.WidgetHooks`."""
