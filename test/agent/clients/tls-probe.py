# Python client checks through the agent. Usage:
#   tls-probe.py get CAFILE IP SNI PATH      -> prints the HTTP status line (verifies with CAFILE)
#   tls-probe.py raw IP HEX [--close]        -> sends raw bytes, prints what came back (b'' on close)
#   tls-probe.py vanish IP                   -> connects and closes at once
import socket, ssl, sys

def get(cafile, ip, sni, path):
    ctx = ssl.create_default_context(cafile=cafile)
    with socket.create_connection((ip, 443), timeout=8) as s:
        with ctx.wrap_socket(s, server_hostname=sni) as t:
            t.sendall(f"GET {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while b"\r\n" not in data:
                chunk = t.recv(4096)
                if not chunk:
                    break
                data += chunk
            print(data.split(b"\r\n")[0].decode())

def raw(ip, hexdata):
    with socket.create_connection((ip, 443), timeout=8) as s:
        s.sendall(bytes.fromhex(hexdata))
        try:
            print(repr(s.recv(4096)))
        except (ConnectionResetError, socket.timeout) as e:
            print(f"reset: {e}")

def vanish(ip):
    s = socket.create_connection((ip, 443), timeout=8)
    s.close()
    print("closed")

cmd = sys.argv[1]
try:
    if cmd == "get":
        get(*sys.argv[2:6])
    elif cmd == "raw":
        raw(sys.argv[2], sys.argv[3])
    elif cmd == "vanish":
        vanish(sys.argv[2])
except ssl.SSLError as e:
    print(f"ssl-error: {e}")
    sys.exit(3)
except OSError as e:
    print(f"os-error: {e}")
    sys.exit(4)
