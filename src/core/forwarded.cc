#include "core/forwarded.h"

#include <algorithm>
#include <string_view>
#include <vector>

#include "core/response.h"

namespace fulmen {
namespace {

// Every value of the named field, joined with "," (a list field may be split
// over several lines: RFC 9110 5.3).
std::string joined(std::span<const Header> headers, std::string_view name, bool* present) {
  std::string out;
  *present = false;
  for (const Header& h : headers) {
    if (!iequals(h.name, name)) continue;
    if (*present) out.push_back(',');
    out.append(h.value);
    *present = true;
  }
  return out;
}

// A node ("192.0.2.1", "192.0.2.1:80", "[2001:db8::1]", "[2001:db8::1]:80",
// or a bare IPv6 address) split into its address and port.
struct Node {
  std::optional<IpAddress> ip;
  std::string text;
  std::optional<uint16_t> port;
};

Node parse_node(std::string_view s) {
  Node n;
  std::string_view addr = s, port;
  if (!s.empty() && s.front() == '[') {
    size_t close = s.find(']');
    if (close == std::string_view::npos) return n;
    addr = s.substr(1, close - 1);
    std::string_view rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return n;
      port = rest.substr(1);
    }
  } else if (std::count(s.begin(), s.end(), ':') == 1) {
    size_t colon = s.find(':');
    addr = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  n.ip = IpAddress::parse(addr);
  if (!n.ip) return n;
  n.text = std::string(addr);
  if (!port.empty()) {
    uint32_t v = 0;
    bool ok = port.size() <= 5;
    for (char c : port) {
      ok = ok && c >= '0' && c <= '9';
      v = v * 10 + static_cast<uint32_t>(c - '0');
    }
    if (ok && v <= 65535) n.port = static_cast<uint16_t>(v);
  }
  return n;
}

// The right-most node that is not a trusted proxy, or the left-most when all
// are; nullopt when the walk meets a node that is not an address (nothing
// beyond it can be believed).
std::optional<size_t> pick(const std::vector<Node>& nodes, const AddressSet& trusted) {
  if (nodes.empty()) return std::nullopt;
  for (size_t i = nodes.size(); i-- > 0;) {
    if (!nodes[i].ip) return std::nullopt;
    if (!trusted.contains(*nodes[i].ip)) return i;
  }
  return 0;
}

// One element of a Forwarded field: its for= and proto= parameters.
struct Element {
  std::string for_value;
  std::string proto;
};

// Parses RFC 7239's forwarded-element list: elements by ",", pairs by ";",
// token or quoted-string values. False on a syntax error.
bool parse_forwarded(std::string_view s, std::vector<Element>* out) {
  Element cur;
  size_t i = 0;
  auto skip_ows = [&] {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  };
  while (true) {
    skip_ows();
    size_t key_start = i;
    while (i < s.size() && s[i] != '=' && s[i] != ';' && s[i] != ',') ++i;
    std::string_view key = trim_ows(s.substr(key_start, i - key_start));
    if (key.empty() && i < s.size() && s[i] == ',') {  // An empty list element.
      ++i;
      continue;
    }
    if (i >= s.size() || s[i] != '=' || key.empty()) return key.empty() && i >= s.size() && out->size() > 0;
    ++i;
    std::string value;
    if (i < s.size() && s[i] == '"') {
      ++i;
      bool closed = false;
      while (i < s.size()) {
        char c = s[i++];
        if (c == '\\' && i < s.size()) {
          value.push_back(s[i++]);
        } else if (c == '"') {
          closed = true;
          break;
        } else {
          value.push_back(c);
        }
      }
      if (!closed) return false;
    } else {
      size_t v = i;
      while (i < s.size() && s[i] != ';' && s[i] != ',' && s[i] != ' ' && s[i] != '\t') ++i;
      value = std::string(s.substr(v, i - v));
      if (value.empty()) return false;
    }
    if (iequals(key, "for")) {
      cur.for_value = value;
    } else if (iequals(key, "proto")) {
      cur.proto = value;
    }
    skip_ows();
    if (i >= s.size()) {
      out->push_back(std::move(cur));
      return true;
    }
    if (s[i] == ';') {
      ++i;
    } else if (s[i] == ',') {
      ++i;
      out->push_back(std::move(cur));
      cur = Element{};
    } else {
      return false;
    }
  }
}

}  // namespace

Forwarded Forwarded::resolve(std::span<const Header> headers, const AddressSet& trusted) {
  Forwarded f;
  bool present = false;
  std::string standard = joined(headers, "forwarded", &present);
  if (present) {
    std::vector<Element> elements;
    if (!parse_forwarded(standard, &elements)) return f;
    std::vector<Node> nodes;
    for (const Element& e : elements) nodes.push_back(parse_node(e.for_value));
    std::optional<size_t> at = pick(nodes, trusted);
    if (!at) return f;
    f.remote = nodes[*at].text;
    f.remote_port = nodes[*at].port;
    const std::string& proto = elements[*at].proto;
    if (iequals(proto, "https")) f.https = true;
    if (iequals(proto, "http")) f.https = false;
    return f;
  }

  // gunicorn's secure_scheme_headers, with its values: each present header
  // says https when it has exactly its value and http otherwise; two that
  // disagree are a contradiction.
  static constexpr struct {
    std::string_view name, secure_value;
  } kScheme[] = {{"x-forwarded-proto", "https"}, {"x-forwarded-ssl", "on"}, {"x-forwarded-protocol", "ssl"}};
  for (const Header& h : headers) {
    for (const auto& s : kScheme) {
      if (!iequals(h.name, s.name)) continue;
      bool https = h.value == s.secure_value;
      if (f.https && *f.https != https) f.conflict = true;
      f.https = https;
    }
  }

  std::string xff = joined(headers, "x-forwarded-for", &present);
  if (present) {
    std::vector<Node> nodes;
    std::string_view rest = xff;
    while (true) {
      size_t comma = rest.find(',');
      std::string_view item = trim_ows(rest.substr(0, comma));
      if (!item.empty()) nodes.push_back(parse_node(item));
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    if (std::optional<size_t> at = pick(nodes, trusted)) f.remote = nodes[*at].text;
  }
  return f;
}

}  // namespace fulmen
