"""Fine-tuning CLIP with LoRA on real and synthetic images: model, data, train, evaluate."""
