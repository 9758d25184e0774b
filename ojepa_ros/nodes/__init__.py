"""Thin rclpy nodes: parse messages, call core, publish."""
