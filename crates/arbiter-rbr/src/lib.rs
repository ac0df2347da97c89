//! Rule-Based Rewards (arXiv:2411.01111).
