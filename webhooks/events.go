package webhooks

import (
	"slices"

	checkout "github.com/checkoutd/checkoutd"
)

// EventEndpointDisabled is recorded, as an event of the endpoint's merchant,
// when an endpoint is disabled after failing for DisableAfter. Other
// endpoints of the merchant can subscribe to it.
const EventEndpointDisabled checkout.EventType = "webhook_endpoint.disabled"

// PrefixEndpoint is the id prefix of webhook endpoints ("we_…").
const PrefixEndpoint = "we"

// PrefixDelivery is the id prefix of webhook deliveries ("whd_…").
const PrefixDelivery = "whd"

// Wildcard subscribes an endpoint to every event type.
const Wildcard = "*"

// EventTypes lists every type an endpoint can subscribe to.
func EventTypes() []checkout.EventType {
	return append(slices.Clone(checkout.EventTypes), EventEndpointDisabled)
}

// ValidateFilter checks an endpoint's event filter: ["*"] alone, or known
// event types, at least one. It returns the filter without duplicates.
func ValidateFilter(filter []string) ([]string, error) {
	if len(filter) == 0 {
		return nil, checkout.InvalidParam("events", "events_missing", `events must list event types, or be ["*"]`)
	}
	known := EventTypes()
	var out []string
	for _, f := range filter {
		if f == Wildcard {
			if len(filter) != 1 {
				return nil, checkout.InvalidParam("events", "events_invalid", `"*" must be the only entry of events`)
			}
			return []string{Wildcard}, nil
		}
		if !slices.Contains(known, checkout.EventType(f)) {
			return nil, checkout.InvalidParam("events", "event_type_unknown", "unknown event type %q", f)
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

// Matches reports whether an endpoint with filter receives events of type t.
// Postgres decides the same way when it fans events out; this is for code
// that must agree with it.
func Matches(filter []string, t checkout.EventType) bool {
	return slices.Contains(filter, Wildcard) || slices.Contains(filter, string(t))
}
