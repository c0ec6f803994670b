module firma.dev/firma-stack/bindings/go

go 1.21
