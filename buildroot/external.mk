include $(sort $(wildcard $(BR2_EXTERNAL_VMFS_RESCUE_PATH)/package/*/*.mk))
