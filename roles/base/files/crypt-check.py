# anvil.hetzner.base: whether this host's crypt(3) (libcrypt, as PAM's pam_unix uses it) verifies a
# password hash, whether a password matches it, and whether an account's shadow entry holds it.
# Reads {"hash", "password" (or null), "user"} as JSON on stdin; prints one JSON object. Never prints
# the hash or the password.
import ctypes
import json
import sys

data = json.load(sys.stdin)
lib = ctypes.CDLL("libcrypt.so.1")
lib.crypt.restype = ctypes.c_char_p
lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]


def crypt(password, setting):
    out = lib.crypt(password.encode(), setting.encode())
    return out.decode() if out else "*0"


hash_ = data["hash"]
setting = hash_[: hash_.rfind("$") + 1]
probe = crypt("anvil-probe", hash_)
supported = not probe.startswith("*") and probe.startswith(setting) and len(probe) == len(hash_)
if data.get("password") is None:
    matches = "unknown"
else:
    matches = "yes" if supported and crypt(data["password"], hash_) == hash_ else "no"
current = "no"
with open("/etc/shadow", encoding="utf-8") as shadow:
    for line in shadow:
        fields = line.rstrip("\n").split(":")
        if fields[0] == data["user"] and len(fields) > 1:
            current = "yes" if fields[1] == hash_ else "no"
print(json.dumps({"supported": "yes" if supported else "no", "matches": matches, "current": current}))
