"""电子公文交换 (document exchange): departments send signed, encrypted documents to
each other; receivers sign for them (签收) or return them (退回); everything verifies
after years."""
