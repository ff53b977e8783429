package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	checkout "github.com/checkoutd/checkoutd"
)

// decodeJSON decodes the request body, which idempotent has already read,
// into v: the body must be one JSON object of v's known fields, sent as
// application/json. allowEmpty lets a bodiless request through with v
// untouched.
func decodeJSON(r *http.Request, v any, allowEmpty bool) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return &checkout.Error{Code: checkout.EINVALID, Reason: "body_unreadable", Message: "the request body could not be read"}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if allowEmpty {
			return nil
		}
		return &checkout.Error{Code: checkout.EINVALID, Reason: "body_missing", Message: "a JSON object body is required"}
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return &checkout.Error{Code: checkout.EINVALID, Reason: reasonUnsupportedMedia,
			Message: "send the body as application/json"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return &checkout.Error{Code: checkout.EINVALID, Reason: "body_invalid", Message: "the body has data after its JSON object"}
	}
	return nil
}

// jsonError turns a decoding error into an error that names the parameter,
// when it can be told.
func jsonError(err error) error {
	if typeErr, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		param := typeErr.Field
		if param == "" {
			return &checkout.Error{Code: checkout.EINVALID, Reason: "body_invalid", Message: "the body must be a JSON object"}
		}
		if i := strings.IndexByte(param, '.'); i >= 0 {
			param = param[:i]
		}
		want := jsonTypeName(typeErr.Type.String())
		if param == "metadata" {
			want = "an object of strings"
		}
		return checkout.InvalidParam(param, "parameter_invalid", "%s must be %s", param, want)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		param, uerr := strconv.Unquote(name)
		if uerr != nil {
			param = name
		}
		return checkout.InvalidParam(param, "parameter_unknown", "unknown parameter %q", param)
	}
	return &checkout.Error{Code: checkout.EINVALID, Reason: "body_invalid", Message: "the body is not valid JSON"}
}

// jsonTypeName names a Go type as the JSON type a client must send.
func jsonTypeName(goType string) string {
	switch {
	case goType == "string" || goType == "*string":
		return "a string"
	case strings.Contains(goType, "int"):
		return "an integer"
	case strings.HasPrefix(goType, "map["):
		return "an object of strings"
	}
	return "of another type"
}
