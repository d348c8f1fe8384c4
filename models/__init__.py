"""Model zoo (AlexNet, VGG) built only from minidl layers: arrives with the layers/models
issue; this package is empty until then."""
