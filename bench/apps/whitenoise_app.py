"""bench/apps/wsgi_app.py behind WhiteNoise, serving bench/.data/static/ at /static/.

The "static" scenario's Python baseline: what a Django or Flask deployment
without a front server does today. WhiteNoise scans the folder once at start
(autorefresh off, as in production) and serves each file from Python with
wsgi.file_wrapper.
"""

import os

from whitenoise import WhiteNoise

from wsgi_app import DATA, application as _app

application = WhiteNoise(_app, root=os.path.join(DATA, "static"), prefix="/static/", autorefresh=False)
