"""A tiny DNS server for tests: answers every A query for NAME with ADDRESS, anything else
NXDOMAIN, on UDP port 53 of LISTEN, until killed. Run in a lab host's namespace:

    python tests/e2e/dns_upstream.py LISTEN NAME ADDRESS
"""

from __future__ import annotations

import socket
import sys

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


def main() -> None:
    listen, name, address = sys.argv[1:4]
    wanted = dns.name.from_text(name)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind((listen, 53))
        print("ready", flush=True)
        while True:
            data, peer = server.recvfrom(4096)
            try:
                query = dns.message.from_wire(data)
            except dns.exception.DNSException:
                continue
            response = dns.message.make_response(query)
            question = query.question[0] if query.question else None
            if question is not None and question.name == wanted:
                if question.rdtype == dns.rdatatype.A:
                    response.answer.append(dns.rrset.from_text(wanted, 0, "IN", "A", address))
            else:
                response.set_rcode(dns.rcode.NXDOMAIN)
            server.sendto(response.to_wire(), peer)


if __name__ == "__main__":
    main()
