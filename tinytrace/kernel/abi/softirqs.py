"""Softirq vectors (include/linux/interrupt.h: HI_SOFTIRQ 0 .. RCU_SOFTIRQ 9), with the
names BCC's softirqs tool prints (the enum names without _SOFTIRQ, in lower case)."""

NAMES = ("hi", "timer", "net_tx", "net_rx", "block", "irq_poll", "tasklet", "sched",
         "hrtimer", "rcu")
