package ledger_test

import "github.com/fxamacker/cbor/v2"

func cborMarshal(v any) ([]byte, error) { return cbor.Marshal(v) }
