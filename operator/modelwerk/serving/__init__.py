"""The model server: one model core, two front ends.

- ``artifacts``: fetch the artifact (file, pvc, http(s), s3) and verify its sha256 digest;
- ``core``: load the verified sklearn artifact, validate requests, predict;
- ``metrics``: the exported series (the names monitoring rules use);
- ``native``: aiohttp server, KServe v1 protocol (``python -m modelwerk.serving``);
- ``v2`` / ``v2_http``: the Open Inference Protocol (KServe v2), pure and on the native server;
- ``workers``: several native server processes on one port, metrics summed over them;
- ``httputil``, ``jsonio``: JSON in and out (orjson when installed), where the model runs;
- ``seldon``: a Seldon Core v1 model class for ``seldon-core-microservice``.

Nothing here imports scikit-learn or seldon_core at package import time.
"""
