"""resnet_course."""
