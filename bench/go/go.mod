module firma.dev/firma-stack/bench/go

go 1.21

require firma.dev/firma-stack/bindings/go v0.0.0

replace firma.dev/firma-stack/bindings/go => ../../bindings/go
