"""procurement"""
