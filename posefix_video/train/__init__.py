"""Training: the engine (train_one_epoch / evaluate / fit), losses, the run config, validation during training
and the datasets (`train.data`).

May import: the shared root modules, net/, io/, eval/, video/ and synthetic/ (validation refines synthetic clips
end to end). Nothing imports train/ except the demo and pipelines/.
"""
