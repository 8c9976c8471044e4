"""What Facebook Messenger and Instagram Direct share: the Messenger Platform's webhooks, Send API,
files and profiles. Each channel is a :class:`~channels._meta.adapter.MetaAdapter` with its
:class:`~channels._meta.flavour.Flavour`."""
