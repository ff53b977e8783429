package sandbox

import (
	"github.com/stellar/go-stellar-sdk/xdr"
)

// Payment-like result codes. payment, path_payment_strict_receive and
// path_payment_strict_send share the numbering of their codes -1 to -11,
// so the apply code uses one set and converts at the end.
const (
	payOK             int32 = 0
	payMalformed      int32 = -1
	payUnderfunded    int32 = -2
	paySrcNoTrust     int32 = -3
	payNoDestination  int32 = -5
	payNoTrust        int32 = -6
	payLineFull       int32 = -8
	payTooFewOffers   int32 = -10
	payOverOrUnderMin int32 = -12 // over_source_max (strict receive), under_dest_min (strict send)
)

var paymentCodeNames = map[int32]string{
	0: "op_success", -1: "op_malformed", -2: "op_underfunded", -3: "op_src_no_trust",
	-4: "op_src_not_authorized", -5: "op_no_destination", -6: "op_no_trust",
	-7: "op_not_authorized", -8: "op_line_full", -9: "op_no_issuer",
	-10: "op_too_few_offers", -11: "op_cross_self",
}

var txCodeNames = map[xdr.TransactionResultCode]string{
	xdr.TransactionResultCodeTxSuccess:             "tx_success",
	xdr.TransactionResultCodeTxFailed:              "tx_failed",
	xdr.TransactionResultCodeTxTooEarly:            "tx_too_early",
	xdr.TransactionResultCodeTxTooLate:             "tx_too_late",
	xdr.TransactionResultCodeTxMissingOperation:    "tx_missing_operation",
	xdr.TransactionResultCodeTxBadSeq:              "tx_bad_seq",
	xdr.TransactionResultCodeTxBadAuth:             "tx_bad_auth",
	xdr.TransactionResultCodeTxInsufficientBalance: "tx_insufficient_balance",
	xdr.TransactionResultCodeTxNoAccount:           "tx_no_source_account",
	xdr.TransactionResultCodeTxInsufficientFee:     "tx_insufficient_fee",
	xdr.TransactionResultCodeTxBadAuthExtra:        "tx_bad_auth_extra",
	xdr.TransactionResultCodeTxInternalError:       "tx_internal_error",
	xdr.TransactionResultCodeTxNotSupported:        "tx_not_supported",
	xdr.TransactionResultCodeTxMalformed:           "tx_malformed",
}

// opCodeName renders an operation result as Horizon's result code string.
func opCodeName(r xdr.OperationResult) string {
	switch r.Code {
	case xdr.OperationResultCodeOpBadAuth:
		return "op_bad_auth"
	case xdr.OperationResultCodeOpNoAccount:
		return "op_no_source_account"
	case xdr.OperationResultCodeOpNotSupported:
		return "op_not_supported"
	case xdr.OperationResultCodeOpInner:
	default:
		return "op_unknown"
	}
	tr := r.Tr
	switch tr.Type {
	case xdr.OperationTypePayment:
		return paymentCodeNames[int32(tr.PaymentResult.Code)]
	case xdr.OperationTypePathPaymentStrictReceive:
		if c := int32(tr.PathPaymentStrictReceiveResult.Code); c != payOverOrUnderMin {
			return paymentCodeNames[c]
		}
		return "op_over_source_max"
	case xdr.OperationTypePathPaymentStrictSend:
		if c := int32(tr.PathPaymentStrictSendResult.Code); c != payOverOrUnderMin {
			return paymentCodeNames[c]
		}
		return "op_under_dest_min"
	case xdr.OperationTypeCreateAccount:
		return map[xdr.CreateAccountResultCode]string{
			xdr.CreateAccountResultCodeCreateAccountSuccess:      "op_success",
			xdr.CreateAccountResultCodeCreateAccountMalformed:    "op_malformed",
			xdr.CreateAccountResultCodeCreateAccountUnderfunded:  "op_underfunded",
			xdr.CreateAccountResultCodeCreateAccountLowReserve:   "op_low_reserve",
			xdr.CreateAccountResultCodeCreateAccountAlreadyExist: "op_already_exists",
		}[tr.CreateAccountResult.Code]
	case xdr.OperationTypeChangeTrust:
		return map[xdr.ChangeTrustResultCode]string{
			xdr.ChangeTrustResultCodeChangeTrustSuccess:          "op_success",
			xdr.ChangeTrustResultCodeChangeTrustMalformed:        "op_malformed",
			xdr.ChangeTrustResultCodeChangeTrustNoIssuer:         "op_no_issuer",
			xdr.ChangeTrustResultCodeChangeTrustInvalidLimit:     "op_invalid_limit",
			xdr.ChangeTrustResultCodeChangeTrustLowReserve:       "op_low_reserve",
			xdr.ChangeTrustResultCodeChangeTrustSelfNotAllowed:   "op_self_not_allowed",
			xdr.ChangeTrustResultCodeChangeTrustTrustLineMissing: "op_trust_line_missing",
			xdr.ChangeTrustResultCodeChangeTrustCannotDelete:     "op_cannot_delete",
		}[tr.ChangeTrustResult.Code]
	case xdr.OperationTypeAccountMerge:
		return map[xdr.AccountMergeResultCode]string{
			xdr.AccountMergeResultCodeAccountMergeSuccess:       "op_success",
			xdr.AccountMergeResultCodeAccountMergeMalformed:     "op_malformed",
			xdr.AccountMergeResultCodeAccountMergeNoAccount:     "op_no_account",
			xdr.AccountMergeResultCodeAccountMergeHasSubEntries: "op_has_sub_entries",
			xdr.AccountMergeResultCodeAccountMergeDestFull:      "op_dest_full",
		}[tr.AccountMergeResult.Code]
	}
	return "op_unknown"
}

func opSucceeded(r xdr.OperationResult) bool { return opCodeName(r) == "op_success" }

func outerResult(c xdr.OperationResultCode) xdr.OperationResult {
	return xdr.OperationResult{Code: c}
}

func innerResult(tr xdr.OperationResultTr) xdr.OperationResult {
	return xdr.OperationResult{Code: xdr.OperationResultCodeOpInner, Tr: &tr}
}

// paymentLikeResult builds the result of a payment or path payment from a
// shared code; last is the delivered amount, for path payment successes.
func paymentLikeResult(t xdr.OperationType, code int32, last xdr.SimplePaymentResult) xdr.OperationResult {
	switch t {
	case xdr.OperationTypePathPaymentStrictReceive:
		r := xdr.PathPaymentStrictReceiveResult{Code: xdr.PathPaymentStrictReceiveResultCode(code)}
		if code == payOK {
			r.Success = &xdr.PathPaymentStrictReceiveResultSuccess{Last: last}
		}
		return innerResult(xdr.OperationResultTr{Type: t, PathPaymentStrictReceiveResult: &r})
	case xdr.OperationTypePathPaymentStrictSend:
		r := xdr.PathPaymentStrictSendResult{Code: xdr.PathPaymentStrictSendResultCode(code)}
		if code == payOK {
			r.Success = &xdr.PathPaymentStrictSendResultSuccess{Last: last}
		}
		return innerResult(xdr.OperationResultTr{Type: t, PathPaymentStrictSendResult: &r})
	}
	return innerResult(xdr.OperationResultTr{Type: xdr.OperationTypePayment, PaymentResult: &xdr.PaymentResult{Code: xdr.PaymentResultCode(code)}})
}

func createAccountResult(c xdr.CreateAccountResultCode) xdr.OperationResult {
	return innerResult(xdr.OperationResultTr{Type: xdr.OperationTypeCreateAccount, CreateAccountResult: &xdr.CreateAccountResult{Code: c}})
}

func changeTrustResult(c xdr.ChangeTrustResultCode) xdr.OperationResult {
	return innerResult(xdr.OperationResultTr{Type: xdr.OperationTypeChangeTrust, ChangeTrustResult: &xdr.ChangeTrustResult{Code: c}})
}

func accountMergeResult(c xdr.AccountMergeResultCode, balance int64) xdr.OperationResult {
	r := xdr.AccountMergeResult{Code: c}
	if c == xdr.AccountMergeResultCodeAccountMergeSuccess {
		b := xdr.Int64(balance)
		r.SourceAccountBalance = &b
	}
	return innerResult(xdr.OperationResultTr{Type: xdr.OperationTypeAccountMerge, AccountMergeResult: &r})
}

// txResultXDR encodes a transaction result; results may be nil for
// transaction-level failures.
func txResultXDR(code xdr.TransactionResultCode, fee int64, results []xdr.OperationResult) string {
	r := xdr.TransactionResult{FeeCharged: xdr.Int64(fee), Result: xdr.TransactionResultResult{Code: code}}
	if code == xdr.TransactionResultCodeTxSuccess || code == xdr.TransactionResultCodeTxFailed {
		if results == nil {
			results = []xdr.OperationResult{}
		}
		r.Result.Results = &results
	}
	s, err := xdr.MarshalBase64(r)
	if err != nil {
		return "" // an unencodable union arm is a sandbox bug; the JSON still carries the codes
	}
	return s
}
