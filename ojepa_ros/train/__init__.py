"""Collect, train and evaluate; ROS-free."""
