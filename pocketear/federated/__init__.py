"""Federated self-supervised pretraining with Flower: the audio never leaves the clients.

``state`` (what is averaged, what stays on a client), ``local`` (a client's training) need only
pocketear; ``flower`` (the client, strategy, simulation and gRPC modes) needs the ``fed`` extra:
``pip install 'pocketear[fed]'``.
"""
