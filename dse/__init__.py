"""spikeforge.dse: see the open issues for what lands here."""

__all__: list[str] = []
