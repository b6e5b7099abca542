"""The quickstart way, as a baseline: Falcon + jwt.decode per request, gunicorn sync workers."""

import base64
import hashlib
import os

import falcon
import jwt

SECRET = base64.b64decode(os.environ["APPROOV_BASE64_SECRET"])


class Auth:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            claims = jwt.decode(req.get_header("Approov-Token") or "", SECRET, algorithms=["HS256"])
        except jwt.PyJWTError:
            resp.status = falcon.HTTP_401
            return
        binding = (req.get_header("Authorization") or "").encode()
        pay = base64.b64encode(hashlib.sha256(binding).digest()).decode()
        resp.status = falcon.HTTP_204 if claims.get("pay") == pay else falcon.HTTP_401


app = falcon.App()
app.add_route("/auth", Auth())
